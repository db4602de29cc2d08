"""The object service (`service.ObjectService`) and the SSE object format it reads and writes."""
