"""What people and tools read: terminal text, HTML, JUnit/Markdown, MLflow and the web view."""
