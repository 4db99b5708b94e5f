"""Images: references, the content store, layers unpacked once and shared, imports."""
