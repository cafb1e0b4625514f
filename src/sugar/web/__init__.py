"""Static files of the service's web page."""
