//! Just enough DER to read and write a public key's SubjectPublicKeyInfo:
//! definite lengths in their shortest form only, single-byte tags, no
//! general ASN.1. Anything else reads as `None`.

/// OID 1.2.840.113549.1.1.1, rsaEncryption (an RSA key for PKCS#1 v1.5).
pub(crate) const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// OID 1.2.840.113549.1.1.10, id-RSASSA-PSS.
pub(crate) const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
/// OID 1.2.840.113549.1.1.8, id-mgf1.
pub(crate) const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
/// OID 2.16.840.1.101.3.4.2.1, SHA-256.
pub(crate) const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
pub(crate) const OID: u8 = 0x06;
pub(crate) const NULL: u8 = 0x05;

/// The first element of `input`: its tag, its contents and what follows.
pub(crate) fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x83 => {
            let (bytes, rest) = rest.split_at_checked(usize::from(first & 0x7f))?;
            let length = bytes.iter().fold(0, |n, &b| n << 8 | usize::from(b));
            // The shortest form only: no leading zero byte, no long form
            // for what fits in one byte.
            if bytes[0] == 0 || length < 0x80 {
                return None;
            }
            (length, rest)
        }
        _ => return None,
    };
    let (contents, rest) = rest.split_at_checked(length)?;
    Some((tag, contents, rest))
}

/// The contents of the element with `tag` that makes up all of `der`.
pub(crate) fn whole(der: &[u8], tag: u8) -> Option<&[u8]> {
    match element(der)? {
        (found, contents, []) if found == tag => Some(contents),
        _ => None,
    }
}

/// The elements that make up all of `der`, in order.
fn elements(mut der: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut found = Vec::new();
    while !der.is_empty() {
        let (tag, contents, rest) = element(der)?;
        found.push((tag, contents));
        der = rest;
    }
    Some(found)
}

/// The element with `tag` around `contents`.
pub(crate) fn wrap(tag: u8, contents: &[u8]) -> Vec<u8> {
    let length = contents.len();
    let mut der = vec![tag];
    match length {
        0..=0x7f => der.push(length as u8),
        0x80..=0xff => der.extend([0x81, length as u8]),
        0x100..=0xffff => der.extend([0x82, (length >> 8) as u8, length as u8]),
        _ => der.extend([
            0x83,
            (length >> 16) as u8,
            (length >> 8) as u8,
            length as u8,
        ]),
    }
    der.extend_from_slice(contents);
    der
}

/// A SubjectPublicKeyInfo's parts.
pub(crate) struct Spki<'a> {
    /// The algorithm's OID (contents only).
    pub(crate) algorithm: &'a [u8],
    /// What follows the OID in the AlgorithmIdentifier: its parameters,
    /// whole elements, possibly none.
    pub(crate) parameters: &'a [u8],
    /// The subjectPublicKey BIT STRING, tag and length included.
    pub(crate) key_element: &'a [u8],
    /// The subjectPublicKey's bits (no unused bits).
    pub(crate) key: &'a [u8],
}

/// The parts of the SubjectPublicKeyInfo `der`.
pub(crate) fn spki(der: &[u8]) -> Option<Spki<'_>> {
    let contents = whole(der, SEQUENCE)?;
    let (tag, identifier, key_element) = element(contents)?;
    let (OID, algorithm, parameters) = element(identifier)? else {
        return None;
    };
    let [0x00, key @ ..] = whole(key_element, BIT_STRING)? else {
        return None;
    };
    (tag == SEQUENCE).then_some(Spki {
        algorithm,
        parameters,
        key_element,
        key,
    })
}

/// Whether `der` is an RSAPublicKey (PKCS#1): two INTEGERs.
pub(crate) fn is_rsa_public_key(der: &[u8]) -> bool {
    whole(der, SEQUENCE)
        .and_then(elements)
        .is_some_and(|parts| matches!(parts[..], [(INTEGER, _), (INTEGER, _)]))
}

/// Whether RSASSA-PSS `parameters` (what follows the OID) allow PS256:
/// none (a key for any RSASSA-PSS use), or SHA-256, MGF1 with SHA-256 and
/// a 32-byte salt, with the hash parameters NULL or absent (RFC 4055 asks
/// readers to take both) and the trailer field absent or 1.
pub(crate) fn pss_allows_ps256(parameters: &[u8]) -> bool {
    if parameters.is_empty() {
        return true;
    }
    let Some(fields) = whole(parameters, SEQUENCE).and_then(elements) else {
        return false;
    };
    let hash = |explicit: &[u8]| whole(explicit, SEQUENCE).is_some_and(is_sha256);
    let mgf = |explicit: &[u8]| {
        whole(explicit, SEQUENCE)
            .and_then(|inner| element(inner))
            .is_some_and(|(tag, oid, hash)| {
                tag == OID && oid == MGF1 && whole(hash, SEQUENCE).is_some_and(is_sha256)
            })
    };
    match fields[..] {
        [(0xa0, h), (0xa1, m), (0xa2, salt)] => hash(h) && mgf(m) && salt == [INTEGER, 1, 32],
        [(0xa0, h), (0xa1, m), (0xa2, salt), (0xa3, trailer)] => {
            hash(h) && mgf(m) && salt == [INTEGER, 1, 32] && trailer == [INTEGER, 1, 1]
        }
        _ => false,
    }
}

/// Whether an AlgorithmIdentifier's contents name SHA-256, its parameters
/// NULL or absent.
fn is_sha256(identifier: &[u8]) -> bool {
    matches!(
        elements(identifier).as_deref(),
        Some([(OID, SHA256)] | [(OID, SHA256), (NULL, [])])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_read_in_their_shortest_form_only() {
        assert_eq!(
            element(&[0x04, 0x01, 0xaa]),
            Some((0x04, &[0xaa][..], &[][..]))
        );
        assert_eq!(element(&[0x04, 0x81, 0x01, 0xaa]), None, "long form for 1");
        let long = [&[0x04, 0x82, 0x00, 0x80][..], &[0; 0x80]].concat();
        assert_eq!(element(&long), None, "a leading zero");
        assert_eq!(element(&[0x04, 0x80]), None, "indefinite");
        assert_eq!(element(&[0x04, 0x02, 0xaa]), None, "short");
        let contents = vec![7; 0x1_0000];
        assert_eq!(whole(&wrap(0x04, &contents), 0x04), Some(&contents[..]));
    }

    #[test]
    fn pss_parameters_other_than_ps256s_are_refused() {
        let sha256 = wrap(SEQUENCE, &[wrap(OID, SHA256), vec![NULL, 0]].concat());
        let sha256_bare = wrap(SEQUENCE, &wrap(OID, SHA256));
        let sha384 = wrap(
            SEQUENCE,
            &wrap(OID, &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02]),
        );
        let params = |hash: &[u8], salt: u8, trailer: Option<u8>| {
            let mgf = wrap(SEQUENCE, &[wrap(OID, MGF1), hash.to_vec()].concat());
            let mut fields = [
                wrap(0xa0, hash),
                wrap(0xa1, &mgf),
                wrap(0xa2, &[INTEGER, 1, salt]),
            ]
            .concat();
            if let Some(trailer) = trailer {
                fields.extend(wrap(0xa3, &[INTEGER, 1, trailer]));
            }
            wrap(SEQUENCE, &fields)
        };
        assert!(pss_allows_ps256(&[]));
        assert!(pss_allows_ps256(&params(&sha256, 32, None)));
        assert!(pss_allows_ps256(&params(&sha256_bare, 32, None)));
        assert!(pss_allows_ps256(&params(&sha256, 32, Some(1))));
        assert!(!pss_allows_ps256(&params(&sha384, 32, None)));
        assert!(!pss_allows_ps256(&params(&sha256, 20, None)));
        assert!(!pss_allows_ps256(&params(&sha256, 32, Some(2))));
        assert!(!pss_allows_ps256(&wrap(SEQUENCE, &[])), "SHA-1 by default");
        assert!(!pss_allows_ps256(&[NULL, 0]));
    }
}
