//! Drift: what was changed outside kms-eth in an account that a stack holds. The live key
//! policy and signer-role trust policy are compared with the documents the template renders
//! for the stack's values, after both are put in one canonical form (AWS answers with its own
//! key order, single-element lists as strings and account ids as root ARNs). Pure code.

use serde_json::{json, Map, Value};

/// The signing function of a stack, as the key and role policies name it.
#[derive(Debug, Clone, Copy)]
pub struct FunctionNames<'a> {
    /// The function's execution role.
    pub role_arn: &'a str,
    /// The function's ARN (what its role's kms:Sign is conditioned on).
    pub function_arn: &'a str,
}

/// The key policy the template gives a key whose signer role is `signer_role_arn`, in an
/// account of `partition` and `account_id`, with the signing function's statements when the
/// stack has one. Statement for statement the template's `KeyPolicy`; a test below checks
/// that every Sid and condition here is in the templates, and the end-to-end fleet tests that
/// a fresh stack shows no drift against it.
pub fn rendered_key_policy(
    partition: &str,
    account_id: &str,
    signer_role_arn: &str,
    function: Option<FunctionNames<'_>>,
) -> Value {
    let digests = json!({
        "kms:SigningAlgorithm": "ECDSA_SHA_256",
        "kms:MessageType": "DIGEST"
    });
    let mut statements = vec![
        json!({
            "Sid": "AccountAdministersTheKey",
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:{partition}:iam::{account_id}:root") },
            "Action": "kms:*",
            "Resource": "*"
        }),
        json!({
            "Sid": "SignerReadsThePublicKey",
            "Effect": "Allow",
            "Principal": { "AWS": signer_role_arn },
            "Action": "kms:GetPublicKey",
            "Resource": "*"
        }),
        json!({
            "Sid": "SignerSignsDigests",
            "Effect": "Allow",
            "Principal": { "AWS": signer_role_arn },
            "Action": "kms:Sign",
            "Resource": "*",
            "Condition": { "StringEquals": digests.clone() }
        }),
    ];
    let mut exceptions = vec![json!(signer_role_arn)];
    if let Some(f) = function {
        statements.extend([
            json!({
                "Sid": "FunctionReadsThePublicKey",
                "Effect": "Allow",
                "Principal": { "AWS": f.role_arn },
                "Action": "kms:GetPublicKey",
                "Resource": "*"
            }),
            json!({
                "Sid": "FunctionSignsDigests",
                "Effect": "Allow",
                "Principal": { "AWS": f.role_arn },
                "Action": "kms:Sign",
                "Resource": "*",
                "Condition": {
                    "StringEquals": digests,
                    "ArnEquals": { "lambda:SourceFunctionArn": f.function_arn }
                }
            }),
            json!({
                "Sid": "FunctionRoleSignsOnlyInItsFunction",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": "kms:Sign",
                "Resource": "*",
                "Condition": {
                    "ArnEquals": { "aws:PrincipalArn": f.role_arn },
                    "ArnNotEquals": { "lambda:SourceFunctionArn": f.function_arn }
                }
            }),
        ]);
        exceptions.push(json!(f.role_arn));
    }
    statements.push(json!({
        "Sid": "NobodyElseSigns",
        "Effect": "Deny",
        "Principal": { "AWS": "*" },
        "Action": "kms:Sign",
        "Resource": "*",
        "Condition": { "ArnNotEquals": { "aws:PrincipalArn": exceptions } }
    }));
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The signer role's inline policy (`SignerPolicy`) for the key `key_arn`.
pub fn rendered_signer_policy(key_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Effect": "Allow", "Action": "kms:GetPublicKey", "Resource": key_arn },
            {
                "Effect": "Allow",
                "Action": "kms:Sign",
                "Resource": key_arn,
                "Condition": { "StringEquals": {
                    "kms:SigningAlgorithm": "ECDSA_SHA_256",
                    "kms:MessageType": "DIGEST"
                } }
            }
        ]
    })
}

/// The function role's inline policy (`FunctionRolePolicy`): the signer's two actions, kms:Sign
/// only from inside the function, and writing to its log group `log_group_arn`.
pub fn rendered_function_policy(key_arn: &str, function_arn: &str, log_group_arn: &str) -> Value {
    let mut policy = rendered_signer_policy(key_arn);
    if let Some(statements) = policy["Statement"].as_array_mut() {
        statements[1]["Condition"]["ArnEquals"] =
            json!({ "lambda:SourceFunctionArn": function_arn });
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": log_group_arn
        }));
    }
    policy
}

/// The function role's trust policy: Lambda alone.
pub fn rendered_function_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "lambda.amazonaws.com" },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// The trust policy the template gives the signer role for `principals`.
pub fn rendered_trust_policy(principals: &[String]) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": principals },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// What differs between the live document and the rendered one, in words; empty when they
/// say the same. `partition` turns bare account ids into the root ARNs AWS shows for them.
pub fn policy_drift(what: &str, live: &str, rendered: &Value, partition: &str) -> Vec<String> {
    let Ok(parsed) = serde_json::from_str::<Value>(live) else {
        return vec![format!("the {what} is not JSON")];
    };
    // A parser keeps one of two equal keys (serde_json the last); which one AWS honours is
    // not something to guess, so a repeated key is drift in itself.
    if let Err(err) = serde_json::from_str::<NoRepeats>(live) {
        return vec![format!(
            "the {what} is not JSON without repeated keys: {err}"
        )];
    }
    let live = parsed;
    let live = canonical(&live, partition);
    let rendered = canonical(rendered, partition);
    if live == rendered {
        return Vec::new();
    }
    let statements = |doc: &Value| -> Vec<Value> {
        match doc.get("Statement") {
            Some(Value::Array(list)) => list.clone(),
            Some(one) => vec![one.clone()],
            None => Vec::new(),
        }
    };
    let (live, rendered) = (statements(&live), statements(&rendered));
    let label = |s: &Value| {
        s.get("Sid").and_then(Value::as_str).map_or_else(
            || "the statement without a Sid".to_owned(),
            |sid| format!("statement {sid}"),
        )
    };
    let mut found = Vec::new();
    for statement in rendered.iter().filter(|s| !live.contains(s)) {
        found.push(format!("the {what} lacks or changed {}", label(statement)));
    }
    for statement in live.iter().filter(|s| !rendered.contains(s)) {
        let sid = label(statement);
        if !found.iter().any(|f| f.ends_with(&sid)) {
            found.push(format!("the {what} has an extra {sid}"));
        }
    }
    if found.is_empty() {
        found.push(format!("the {what} differs from the template's"));
    }
    found
}

/// A JSON document read only to refuse an object that names one key twice.
struct NoRepeats;

impl<'de> serde::Deserialize<'de> for NoRepeats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoRepeatsVisitor)
    }
}

struct NoRepeatsVisitor;

impl<'de> serde::de::Visitor<'de> for NoRepeatsVisitor {
    type Value = NoRepeats;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoRepeats, E> {
        Ok(NoRepeats)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoRepeats, E> {
        Ok(NoRepeats)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoRepeats, E> {
        Ok(NoRepeats)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoRepeats, E> {
        Ok(NoRepeats)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoRepeats, E> {
        Ok(NoRepeats)
    }
    fn visit_unit<E>(self) -> Result<NoRepeats, E> {
        Ok(NoRepeats)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoRepeats, A::Error> {
        while seq.next_element::<NoRepeats>()?.is_some() {}
        Ok(NoRepeats)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoRepeats, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "key {key:?} appears twice"
                )));
            }
            map.next_value::<NoRepeats>()?;
        }
        Ok(NoRepeats)
    }
}

/// One form for documents that say the same: object keys sorted, lists sorted and without
/// repeats, a one-element list as its element, and in `Principal` a bare account id as its
/// root ARN.
fn canonical(value: &Value, partition: &str) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                let inner = canonical(&map[key], partition);
                let inner = if key == "Principal" {
                    principals_as_arns(inner, partition)
                } else {
                    inner
                };
                out.insert(key.clone(), inner);
            }
            Value::Object(out)
        }
        Value::Array(list) => as_set(list.iter().map(|v| canonical(v, partition)).collect()),
        other => other.clone(),
    }
}

/// A list as a set: sorted, without repeats, and one element as itself.
fn as_set(mut items: Vec<Value>) -> Value {
    items.sort_by_key(Value::to_string);
    items.dedup();
    if items.len() == 1 {
        items.remove(0)
    } else {
        Value::Array(items)
    }
}

fn principals_as_arns(principal: Value, partition: &str) -> Value {
    let as_arn = |v: &Value| match v.as_str() {
        Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => {
            Value::String(format!("arn:{partition}:iam::{id}:root"))
        }
        _ => v.clone(),
    };
    match principal {
        Value::Object(mut map) => {
            if let Some(aws) = map.get_mut("AWS") {
                let converted = match &*aws {
                    Value::Array(list) => as_set(list.iter().map(as_arn).collect()),
                    other => as_arn(other),
                };
                *aws = converted;
            }
            Value::Object(map)
        }
        other => other,
    }
}

/// Decodes the `%XX` escapes of IAM's URL-encoded policy documents (`+` is left as it is:
/// IAM encodes spaces as `%20`). A malformed escape is kept as written.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ROLE: &str = "arn:aws:iam::111111111111:role/acct-SignerRole-1";

    #[test]
    fn the_rendered_key_policy_is_the_templates() {
        let template =
            kms_eth_provisioner::render(kms_eth_provisioner::RemovalPolicy::Retain, None);
        let with_function = kms_eth_provisioner::render(
            kms_eth_provisioner::RemovalPolicy::Retain,
            Some(kms_eth_provisioner::FunctionMode::Policy),
        );
        let function = FunctionNames {
            role_arn: "arn:aws:iam::111111111111:role/acct-FunctionRole-1",
            function_arn: "arn:aws:lambda:us-east-1:111111111111:function:acct-signer",
        };
        for (template, function) in [(&template, None), (&with_function, Some(function))] {
            let policy = rendered_key_policy("aws", "111111111111", ROLE, function);
            for statement in policy["Statement"].as_array().unwrap() {
                let sid = statement["Sid"].as_str().unwrap();
                assert!(template.contains(&format!("Sid: {sid}")), "{sid}");
                assert!(template.contains(statement["Action"].as_str().unwrap()));
            }
            for word in [
                "ArnNotEquals",
                "aws:PrincipalArn",
                "kms:MessageType: DIGEST",
            ] {
                assert!(template.contains(word), "{word}");
            }
            let sids = template.matches("- Sid: ").count();
            assert_eq!(sids, policy["Statement"].as_array().unwrap().len());
        }
        assert_eq!(
            with_function.matches("lambda:SourceFunctionArn").count(),
            3,
            "the key policy's allow and deny, and the role's policy"
        );
    }

    #[test]
    fn aws_formatting_is_not_drift_but_a_changed_or_added_statement_is() {
        let rendered = rendered_key_policy("aws", "111111111111", ROLE, None);
        // What AWS answers: other key order, single lists as strings.
        let mut live = rendered.clone();
        live["Statement"].as_array_mut().unwrap().reverse();
        live["Statement"][0]["Action"] = json!(["kms:Sign"]);
        let live_text = live.to_string();
        assert!(policy_drift("key policy", &live_text, &rendered, "aws").is_empty());

        let mut widened = rendered.clone();
        widened["Statement"][3]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] =
            json!([ROLE, "arn:aws:iam::111111111111:role/thief"]);
        let found = policy_drift("key policy", &widened.to_string(), &rendered, "aws");
        assert_eq!(
            found,
            ["the key policy lacks or changed statement NobodyElseSigns"]
        );

        let mut added = rendered.clone();
        added["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Sid": "Backdoor", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Sign", "Resource": "*"}));
        let found = policy_drift("key policy", &added.to_string(), &rendered, "aws");
        assert_eq!(found, ["the key policy has an extra statement Backdoor"]);
        assert_eq!(
            policy_drift("key policy", "not json", &rendered, "aws"),
            ["the key policy is not JSON"]
        );
    }

    #[test]
    fn a_repeated_key_is_drift_whichever_copy_a_parser_keeps() {
        let rendered = rendered_key_policy("aws", "111111111111", ROLE, None);
        let text = rendered.to_string();
        // The deny's condition said twice, the first copy exempting a thief: serde_json keeps
        // the last, which alone would compare equal.
        let sneaky = text.replacen(
            r#""Condition":{"ArnNotEquals""#,
            r#""Condition":{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::1:role/thief"}},"Condition":{"ArnNotEquals""#,
            1,
        );
        assert_ne!(sneaky, text);
        let found = policy_drift("key policy", &sneaky, &rendered, "aws");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("appears twice"), "{found:?}");
        assert!(policy_drift("key policy", &text, &rendered, "aws").is_empty());
    }

    #[test]
    fn a_trust_policy_naming_an_account_id_matches_its_root_arn() {
        let rendered = rendered_trust_policy(&["111111111111".into(), ROLE.into()]);
        let live = json!({"Version": "2012-10-17", "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow",
            "Principal": {"AWS": [ROLE, "arn:aws:iam::111111111111:root"]}}]});
        assert!(policy_drift("trust", &live.to_string(), &rendered, "aws").is_empty());
        let other = rendered_trust_policy(&[ROLE.into()]);
        assert_eq!(
            policy_drift("trust policy", &live.to_string(), &other, "aws"),
            ["the trust policy lacks or changed the statement without a Sid"]
        );
    }

    #[test]
    fn iam_documents_are_percent_decoded() {
        assert_eq!(
            percent_decode("%7B%22Action%22%3A%20%22sts%3AAssumeRole%22%7D"),
            r#"{"Action": "sts:AssumeRole"}"#
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
