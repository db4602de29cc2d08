"""Storage backends: the contract (`contract` Protocols, `base` types and errors), the durable
local-disk backend (`fs`) and `factory.open_store`, which picks a backend for a data location."""

from sealstore.storage.base import (
    BucketAlreadyOwnedByYou,
    BucketInfo,
    BucketNotEmpty,
    EntityTooSmall,
    InvalidArgument,
    InvalidBucketName,
    InvalidObjectName,
    InvalidPart,
    InvalidPartOrder,
    ListResult,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    ObjectMeta,
    PartMeta,
    StorageError,
    StorageFull,
    UploadMeta,
    validate_bucket_name,
    validate_object_key,
)
from sealstore.storage.contract import ObjectWriter, PartWriter, Store
from sealstore.storage.fs import FSBackend

__all__ = [
    "BucketAlreadyOwnedByYou",
    "BucketInfo",
    "BucketNotEmpty",
    "EntityTooSmall",
    "FSBackend",
    "InvalidArgument",
    "InvalidBucketName",
    "InvalidObjectName",
    "InvalidPart",
    "InvalidPartOrder",
    "ListResult",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchUpload",
    "ObjectMeta",
    "ObjectWriter",
    "PartMeta",
    "PartWriter",
    "StorageError",
    "StorageFull",
    "Store",
    "UploadMeta",
    "validate_bucket_name",
    "validate_object_key",
]
