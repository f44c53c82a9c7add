"""What operators see: metrics, status, systemd notifications, logs, progress."""
