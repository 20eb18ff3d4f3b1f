"""The application shell of labelbot: settings, the PTB application, the CLI and the sandbox."""
