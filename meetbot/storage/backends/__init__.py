"""Object-store back-ends: local.py (a directory) and s3.py (any S3 server, through the minio SDK)."""
