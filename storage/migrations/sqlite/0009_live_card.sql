-- The message that is a worker's live task card: the one card whose buttons act. Showing a
-- card elsewhere retires this one, so a phone scrolled back never shows two cards for one task.
-- Kept here, not in memory, so it survives restarts and holds across several bot processes.
ALTER TABLE workers ADD COLUMN card_message_id INTEGER;
