"""The desk page: the station desk in a sergeant's browser, served with the desk API."""
