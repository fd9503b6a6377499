//! Server-side encryption: the headers every request that writes an object carries, built in
//! one place.

use aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder;
use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::types::ServerSideEncryption;

/// The encryption a store writes objects with: none, `AES256`, or `aws:kms` with a key.
#[derive(Debug, Clone, Default)]
pub(super) struct Sse {
    algorithm: Option<ServerSideEncryption>,
    kms_key_id: Option<String>,
}

impl Sse {
    /// From the (validated) settings.
    pub(super) fn new(algorithm: Option<&str>, kms_key_id: Option<String>) -> Self {
        Sse {
            algorithm: algorithm.map(ServerSideEncryption::from),
            kms_key_id,
        }
    }
}

/// A request that writes an object: it takes the encryption headers.
pub(super) trait WithSse {
    /// The request with `sse`'s headers.
    fn sse(self, sse: &Sse) -> Self;
}

macro_rules! with_sse {
    ($($builder:ty),*) => {$(
        impl WithSse for $builder {
            fn sse(self, sse: &Sse) -> Self {
                self.set_server_side_encryption(sse.algorithm.clone())
                    .set_ssekms_key_id(sse.kms_key_id.clone())
            }
        }
    )*};
}

with_sse!(
    PutObjectFluentBuilder,
    CreateMultipartUploadFluentBuilder,
    CopyObjectFluentBuilder
);
