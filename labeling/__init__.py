"""The domain core of labelbot: batches, tasks, answers and labels, free of Telegram and SQL."""
