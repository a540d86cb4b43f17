"""What people read outside the dashboard: PNG plots of a deer's activity."""
