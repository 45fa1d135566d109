"""Pipeline config: protobuf schema, loading and validation."""
