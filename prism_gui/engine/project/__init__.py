"""Projects: the project folder, the app's jobs and model cache, the report and the demo."""
