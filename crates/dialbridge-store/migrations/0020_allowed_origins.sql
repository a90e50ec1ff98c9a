-- Web origins whose pages may open the agent toolbar's WebSocket, separated by spaces.
ALTER TABLE enterprises ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';
