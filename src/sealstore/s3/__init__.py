"""S3 protocol layer: request authentication, body decoding, errors, routing and handlers."""
