-- The charset of a form push's fields: utf-8, or gbk for older CRMs that read nothing else.
ALTER TABLE push_targets ADD COLUMN charset TEXT NOT NULL DEFAULT 'utf-8';
