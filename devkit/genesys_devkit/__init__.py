"""Development kit for airflow-genesys-dialer: the demo and its data (the emulator is genesys_emulator)."""
