"""Small servers speaking the real wire protocols of engines that cannot run here (GPU engines)."""
