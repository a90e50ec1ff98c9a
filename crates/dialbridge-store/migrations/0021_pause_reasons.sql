-- The pause reasons agents pick from in the toolbar, one per line.
ALTER TABLE enterprises ADD COLUMN pause_reasons TEXT NOT NULL DEFAULT '';
