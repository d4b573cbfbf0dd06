"""The event model: Avro schemas for every topic, the serializer, envelopes, and the DDL.

The one place where the shape of data is defined.
"""
