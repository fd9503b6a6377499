//! How an SDK failure becomes one line that says what failed, why, and what to do.

use std::ops::ControlFlow;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::S3Store;
use crate::error::{clip, escape_unprintable, Error, Result};

impl S3Store {
    /// Turns an SDK error into a typed error whose line says what failed, why, and what to
    /// do, never including credentials; the SDK's error stays as its source. The type
    /// decides the retry: a 5xx, a reset, or a body the store refused by its checksum (it was
    /// corrupted on the way) may pass; any other refusal would only be refused again.
    pub(super) fn fail<E>(&self, what: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (message, kind) = match self.describe(what, &err) {
            ControlFlow::Continue(described) => described,
            ControlFlow::Break(error) => return error,
        };
        let source: Option<crate::error::BoxError> = Some(Box::new(err));
        match kind {
            Kind::Transient => Error::Transient { message, source },
            Kind::Throttled => Error::Throttled { message, source },
            Kind::Rejected => Error::Rejected { message, source },
        }
    }

    /// The line for a failed request and how it is retried; or, where the cure is in the
    /// settings (the bucket, the credentials, the timeout), the finished error.
    fn describe<E>(
        &self,
        what: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> ControlFlow<Error, (String, Kind)>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (endpoint, names) = (&self.endpoint, self.names);
        ControlFlow::Continue(match err {
            SdkError::ServiceError(se) => {
                return self.refused(what, se.raw().status().as_u16(), se.err(), err)
            }
            SdkError::TimeoutError(_) => {
                return ControlFlow::Break(Error::Timeout(format!(
                    "{what} timed out after {} s at {endpoint}: the store does not answer; check the endpoint, the network and HTTPS_PROXY, or raise {}",
                    self.tuning.timeout.as_secs(),
                    names.timeout()
                )))
            }
            SdkError::DispatchFailure(_) if sts_refusal(err).is_some() => {
                let why = sts_refusal(err).unwrap_or_default();
                return ControlFlow::Break(Error::denied(format!(
                    "STS refused to let the credentials assume the role ({}) while {what} ({why}): check the role's ARN, that its trust policy names these credentials, and that their policy allows sts:AssumeRole on it",
                    names.role()
                )));
            }
            SdkError::DispatchFailure(_) if credentials_not_loaded(err) => {
                return ControlFlow::Break(Error::Config(format!(
                    "no AWS credentials found while {what}: {}, or run where an instance or task role is available",
                    names.credentials()
                )))
            }
            SdkError::DispatchFailure(_) => (
                format!(
                    "cannot reach {endpoint} while {what} ({}): check the endpoint ({}), the network and HTTPS_PROXY/NO_PROXY",
                    root_cause(err),
                    names.endpoint()
                ),
                Kind::Transient,
            ),
            SdkError::ConstructionFailure(_) => {
                let text = one_line(&DisplayErrorContext(err).to_string());
                if credentials_errors(err).next().is_some() {
                    return ControlFlow::Break(Error::Config(format!(
                        "no usable AWS credentials while {what} ({text}): {}, or run where a role is available",
                        names.credentials()
                    )));
                }
                (format!("{what} could not be sent: {text}"), Kind::Rejected)
            }
            // A response cut off or unreadable.
            _ => (
                format!(
                    "{what} failed at {endpoint}: {}",
                    one_line(&DisplayErrorContext(err).to_string())
                ),
                Kind::Transient,
            ),
        })
    }

    /// A store's error answer: a missing bucket or refused credentials are cured in the
    /// settings, so their line says which; any other answer is retried or not by its status
    /// and code.
    fn refused(
        &self,
        what: &str,
        status: u16,
        meta: &impl ProvideErrorMetadata,
        err: &(dyn std::error::Error + 'static),
    ) -> ControlFlow<Error, (String, Kind)> {
        let (bucket, endpoint, names) = (&self.bucket, &self.endpoint, self.names);
        let denied = |message: String| {
            ControlFlow::Break(Error::Denied {
                message,
                source: None,
            })
        };
        let code = meta.code().unwrap_or("");
        let msg = one_line(meta.message().unwrap_or(""));
        let credentials = || {
            denied(format!(
                "{endpoint} rejected the credentials while {what} ({code}): {}",
                names.key_id()
            ))
        };
        ControlFlow::Continue(match code {
            "NoSuchBucket" => return denied(format!(
                "bucket {bucket:?} does not exist at {endpoint}: create it, or fix {} / the endpoint",
                names.bucket()
            )),
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken"
            | "InvalidToken" | "InvalidClientTokenId" => return credentials(),
            // Some stores (Garage) answer a bad key or signature with a plain AccessDenied,
            // which has no structured form that says so: only the store's own message does.
            // It decides nothing but which of two Denied lines (same exit code) is shown.
            _ if status == 403 && is_credential_message(&msg) => return credentials(),
            _ if code == "AccessDenied" || status == 403 => return denied(format!(
                "access denied to bucket {bucket:?} at {endpoint} while {what} ({code} {msg}): grant the credentials s3:ListBucket, s3:GetObject and s3:PutObject on it"
            )),
            _ if (200..300).contains(&status) => (
                format!(
                    "{what} failed at {endpoint}: its answer (HTTP {status}) could not be read ({})",
                    root_cause(err)
                ),
                Kind::Transient,
            ),
            _ => (
                format!("{what} failed at {endpoint}: HTTP {status} {code} {msg}"),
                classify(status, code),
            ),
        })
    }

    /// A failed copy; a failed `x-amz-copy-source-if-match` means the source was rewritten.
    pub(super) fn fail_copy<E>(&self, src: &str, dst: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if let SdkError::ServiceError(se) = &err {
            if se.raw().status().as_u16() == 412 {
                return Error::Precondition(format!(
                    "{src} changed after its manifest was written (entity tag differs): not copying it"
                ));
            }
        }
        self.fail(&format!("copying {src} to {dst}"), err)
    }
}

/// How a store's refusal is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Transient,
    Throttled,
    Rejected,
}

/// A failed request by its status and error code: throttling, a failure that may pass, or a
/// refusal that would be repeated.
fn classify(status: u16, code: &str) -> Kind {
    match (status, code) {
        (429, _)
        | (_, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded") => {
            Kind::Throttled
        }
        (500..=599, _) | (408, _) => Kind::Transient,
        // A body corrupted or cut on the way, which the store refused by its checksum or
        // length; or a connection the store gave up on: sent again, they may pass.
        (
            _,
            "BadDigest"
            | "InvalidDigest"
            | "XAmzContentSHA256Mismatch"
            | "XAmzContentChecksumMismatch"
            | "IncompleteBody"
            | "RequestTimeout"
            | "OperationAborted"
            | "InternalError",
        ) => Kind::Transient,
        _ => Kind::Rejected,
    }
}

/// An endpoint must be an http(s) URL with a host, or the SDK fails later with a vaguer
/// "dispatch failure".
/// An endpoint URL as errors show it: without any user-info (`http://user:password@host`
/// shows as `http://…@host`), which may hold a secret.
pub(super) fn shown_endpoint(ep: &str) -> String {
    let (scheme, rest) = match ep.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), ep),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}…{}", &rest[at..]),
        None => ep.to_string(),
    }
}

pub(super) fn check_endpoint(ep: &str) -> Result<()> {
    let rest = ep
        .strip_prefix("https://")
        .or_else(|| ep.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => Ok(()),
        _ => Err(Error::Config(format!(
            "invalid endpoint {}: use an http:// or https:// URL such as https://s3.example.com:9000",
            clip(&shown_endpoint(ep))
        ))),
    }
}

/// Every credentials provider's error in `err`'s source chain, outermost first. The SDK keeps
/// the provider's [`CredentialsError`] as a source: a request whose identity could not be
/// resolved is a dispatch failure whose `ConnectorError` holds it, and an assumed role's
/// provider holds its own STS request's error, which may hold another.
fn credentials_errors<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a CredentialsError> {
    std::iter::successors(Some(err), |e| e.source())
        .filter_map(|e| e.downcast_ref::<CredentialsError>())
}

/// Whether a provider behind `err` found no credentials at all (the default chain, every one
/// of its providers empty): a setting to fix, not a failure to retry.
fn credentials_not_loaded(err: &(dyn std::error::Error + 'static)) -> bool {
    credentials_errors(err).any(|c| matches!(c, CredentialsError::CredentialsNotLoaded(_)))
}

/// STS's refusal (its code and message, or its HTTP status), when a role's credentials could not be
/// had because STS refused them (AssumeRole, or AssumeRoleWithWebIdentity, answered 4xx): the
/// provider keeps STS's error in `err`'s source chain. Throttling is not a refusal.
fn sts_refusal(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
    fn refused<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<String> {
        let SdkError::ServiceError(se) = e else {
            return None;
        };
        let status = se.raw().status().as_u16();
        let code = se.err().code().unwrap_or("");
        let throttled = status == 429 || code.contains("Throttl") || code == "RequestLimitExceeded";
        if !(400..500).contains(&status) || throttled {
            return None;
        }
        let shown =
            |t: &str| escape_unprintable(&t.chars().take(200).collect::<String>()).into_owned();
        let why = match (code, se.err().message().unwrap_or("")) {
            ("", _) => format!("HTTP {status}"),
            (code, "") => shown(code),
            (code, msg) => format!("{}: {}", shown(code), shown(msg)),
        };
        Some(why)
    }
    std::iter::successors(Some(err), |e| e.source()).find_map(|e| {
        if let Some(e) = e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
            refused(e)
        } else if let Some(e) =
            e.downcast_ref::<SdkError<AssumeRoleWithWebIdentityError, HttpResponse>>()
        {
            refused(e)
        } else {
            None
        }
    })
}

/// The innermost error's message, e.g. "Connection refused (os error 111)".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    one_line(&cur.to_string())
}

fn is_credential_message(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "signature",
        "access key",
        "no such key id",
        "credential",
        "token",
    ]
    .iter()
    .any(|w| m.contains(w))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::error::ConnectorError;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;
    use crate::store::{StoreConfig, Tuning};

    /// An endpoint's user-info never reaches an error; the rest of the URL does.
    #[test]
    fn endpoints_are_shown_without_their_user_info() {
        assert_eq!(
            shown_endpoint("http://user:pa55@host:9000/x"),
            "http://…@host:9000/x"
        );
        assert_eq!(shown_endpoint("https://h/p@q"), "https://h/p@q");
        assert_eq!(shown_endpoint("http://h:1"), "http://h:1");
        let e = check_endpoint("ftp://user:pa55@host")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pa55"), "{e}");
    }

    /// A store at an endpoint nothing answers (no request is sent: only errors are made).
    async fn store() -> S3Store {
        let cfg = StoreConfig {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            ..StoreConfig::default()
        };
        S3Store::open("b", &cfg, &Tuning::default()).await.unwrap()
    }

    /// The store's answer: an error `code` (and `message`) with an HTTP `status`.
    fn answer(status: u16, code: &str, message: &str) -> SdkError<GetObjectError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(GetObjectError::generic(meta), raw)
    }

    /// A request that never reached the store, for `source`.
    fn undelivered(source: ConnectorError) -> SdkError<GetObjectError, HttpResponse> {
        SdkError::dispatch_failure(source)
    }

    /// What an error becomes: its exit code, whether it is retried, and its line.
    fn outcome(e: Error) -> (i32, bool, String) {
        (e.exit_code(), e.retryable(), e.to_string())
    }

    /// The store's error codes and statuses decide: a missing bucket and refused credentials
    /// are the settings' to cure (exit 4), throttling and 5xx are retried, any other refusal
    /// is refused again (exit 1, not retried).
    #[tokio::test]
    async fn a_stores_answer_is_judged_by_its_code_and_status() {
        let s = store().await;
        let (code, retried, line) = outcome(s.fail("reading k", answer(404, "NoSuchBucket", "")));
        assert_eq!((code, retried), (4, false));
        assert!(
            line.starts_with("bucket \"b\" does not exist at http://127.0.0.1:9"),
            "{line}"
        );
        for (status, code) in [(403, "SignatureDoesNotMatch"), (403, "InvalidAccessKeyId")] {
            let (exit, retried, line) = outcome(s.fail("reading k", answer(status, code, "")));
            assert_eq!((exit, retried), (4, false), "{code}");
            assert!(
                line.contains("rejected the credentials while reading k"),
                "{line}"
            );
        }
        let (exit, _, line) = outcome(s.fail("reading k", answer(403, "AccessDenied", "")));
        assert_eq!(exit, 4);
        assert!(line.starts_with("access denied to bucket \"b\""), "{line}");
        let slow = s.fail(
            "reading k",
            answer(503, "SlowDown", "Reduce your request rate"),
        );
        assert!(matches!(slow, Error::Throttled { .. }), "{slow:?}");
        assert_eq!(outcome(slow).0, 1);
        let (exit, retried, _) = outcome(s.fail("reading k", answer(500, "InternalError", "")));
        assert_eq!((exit, retried), (1, true));
        let (exit, retried, line) =
            outcome(s.fail("reading k", answer(400, "InvalidArgument", "no")));
        assert_eq!((exit, retried), (1, false));
        assert_eq!(
            line,
            "reading k failed at http://127.0.0.1:9: HTTP 400 InvalidArgument no"
        );
    }

    /// No credentials anywhere is a configuration error (exit 2), found by the credentials
    /// provider's error in the SDK's source chain, however deep (an assumed role's STS request
    /// wraps its own); a connection that fails is a failure that may pass.
    #[tokio::test]
    async fn a_request_that_never_left_is_judged_by_its_errors_kind() {
        let s = store().await;
        let none = || {
            CredentialsError::not_loaded("no credentials found in chain. Attempted: environment")
        };
        let e = s.fail(
            "listing",
            undelivered(ConnectorError::other(none().into(), None)),
        );
        let (exit, retried, line) = outcome(e);
        assert_eq!((exit, retried), (2, false));
        assert!(
            line.starts_with("no AWS credentials found while listing: "),
            "{line}"
        );
        // Behind an assumed role: the role's provider failed because STS's request had none.
        let sts: SdkError<GetObjectError, HttpResponse> =
            undelivered(ConnectorError::other(none().into(), None));
        let role = CredentialsError::provider_error(sts);
        let e = s.fail(
            "listing",
            undelivered(ConnectorError::other(role.into(), None)),
        );
        assert_eq!(outcome(e).0, 2);
        // Refused connections, and a provider that failed otherwise, may pass.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = s.fail("listing", undelivered(ConnectorError::io(refused.into())));
        let (exit, retried, line) = outcome(e);
        assert_eq!((exit, retried), (1, true));
        assert!(
            line.starts_with("cannot reach http://127.0.0.1:9 while listing ("),
            "{line}"
        );
        let failed = CredentialsError::provider_error("IMDS answered 500");
        let e = s.fail(
            "listing",
            undelivered(ConnectorError::other(failed.into(), None)),
        );
        let (exit, retried, line) = outcome(e);
        assert_eq!((exit, retried), (1, true));
        assert!(
            line.starts_with("cannot reach http://127.0.0.1:9 while listing ("),
            "{line}"
        );
    }

    /// A role STS refused to hand out is the credentials' refusal (exit 4, not retried) that
    /// names the role's setting and STS's code, not a store out of reach; STS throttling, or
    /// failing, may pass.
    #[tokio::test]
    async fn a_role_sts_refused_is_the_credentials_refusal() {
        use aws_sdk_sts::operation::assume_role::AssumeRoleError;
        let s = store().await;
        let sts = |status: u16, code: &str| {
            let meta = ErrorMetadata::builder()
                .code(code)
                .message(
                    "User: arn:aws:iam::1:user/ci is not authorized to perform: sts:AssumeRole",
                )
                .build();
            let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
            let e = SdkError::service_error(AssumeRoleError::generic(meta), raw);
            let role = CredentialsError::provider_error(e);
            s.fail(
                "listing",
                undelivered(ConnectorError::other(role.into(), None)),
            )
        };
        let (exit, retried, line) = outcome(sts(403, "AccessDenied"));
        assert_eq!((exit, retried), (4, false));
        assert!(
            line.starts_with("STS refused to let the credentials assume the role (AWS_ROLE / --role) while listing (AccessDenied: User: arn:aws:iam::1:user/ci is not authorized to perform: sts:AssumeRole): check the role's ARN"),
            "{line}"
        );
        for (status, code) in [(400, "Throttling"), (503, "ServiceUnavailable")] {
            let (exit, retried, line) = outcome(sts(status, code));
            assert_eq!((exit, retried), (1, true), "{code}: {line}");
        }
    }

    /// A request that could not be built for want of usable credentials is a configuration
    /// error; one that could not be built otherwise is refused (exit 1, not retried).
    #[tokio::test]
    async fn a_request_that_could_not_be_built_is_judged_by_its_errors_kind() {
        let s = store().await;
        let bad = CredentialsError::invalid_configuration("profile loops");
        let e = s.fail(
            "listing",
            SdkError::<GetObjectError, HttpResponse>::construction_failure(bad),
        );
        let (exit, retried, line) = outcome(e);
        assert_eq!((exit, retried), (2, false));
        assert!(
            line.starts_with("no usable AWS credentials while listing ("),
            "{line}"
        );
        let other =
            SdkError::<GetObjectError, HttpResponse>::construction_failure("key was not set");
        let (exit, retried, line) = outcome(s.fail("listing", other));
        assert_eq!((exit, retried), (1, false));
        assert!(line.starts_with("listing could not be sent: "), "{line}");
    }

    /// The words of an error decide nothing: a provider that found no credentials is one
    /// whatever its message says, and a message that speaks of credentials is not one.
    #[tokio::test]
    async fn the_words_of_an_sdk_error_decide_nothing() {
        let s = store().await;
        let quiet = CredentialsError::not_loaded_no_source();
        let e = s.fail(
            "listing",
            undelivered(ConnectorError::other(quiet.into(), None)),
        );
        assert_eq!(outcome(e).0, 2);
        let says = std::io::Error::other("proxy said: no credentials for you");
        let e = s.fail("listing", undelivered(ConnectorError::io(says.into())));
        let (exit, retried, line) = outcome(e);
        assert_eq!((exit, retried), (1, true));
        assert!(
            line.starts_with("cannot reach http://127.0.0.1:9 while listing ("),
            "{line}"
        );
        let says = "the credential scope is malformed";
        let e = SdkError::<GetObjectError, HttpResponse>::construction_failure(says);
        let (exit, retried, _) = outcome(s.fail("listing", e));
        assert_eq!((exit, retried), (1, false));
    }

    /// Only what may pass is retried: a 400 is refused again, a checksum mismatch (a body
    /// corrupted on the way) or a 5xx may pass.
    #[test]
    fn refusals_are_classified_by_status_and_code() {
        assert_eq!(classify(400, "InvalidArgument"), Kind::Rejected);
        assert_eq!(classify(400, "InvalidRequest"), Kind::Rejected);
        assert_eq!(classify(404, "NoSuchKey"), Kind::Rejected);
        assert_eq!(classify(400, "BadDigest"), Kind::Transient);
        assert_eq!(classify(400, "InvalidDigest"), Kind::Transient);
        assert_eq!(classify(500, "InternalError"), Kind::Transient);
        assert_eq!(classify(502, ""), Kind::Transient);
        assert_eq!(classify(503, "SlowDown"), Kind::Throttled);
        assert_eq!(classify(429, ""), Kind::Throttled);
    }
}
