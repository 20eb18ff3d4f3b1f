-- The PostgreSQL form of sqlite/0009_live_card.sql.
ALTER TABLE workers ADD COLUMN card_message_id BIGINT;
