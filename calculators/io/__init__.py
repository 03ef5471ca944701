"""Video and file I/O calculators: sources (camera, file, URL, images), the video writer, the window, JSONL."""
