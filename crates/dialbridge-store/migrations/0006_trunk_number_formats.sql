-- How each carrier wants numbers written on its trunk (dialbridge_core::NumberFormat specs;
-- '' = as normalised).
ALTER TABLE trunks ADD COLUMN customer_number_format TEXT NOT NULL DEFAULT '';
ALTER TABLE trunks ADD COLUMN caller_id_format TEXT NOT NULL DEFAULT '';
