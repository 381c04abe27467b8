"""genbench."""
