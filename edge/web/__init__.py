"""What a person looks at: the overlay page, the desktop window, Prometheus metrics."""
