//! A policy bundle: the schema, the policies, the agents, the mode and the test cases, loaded and
//! checked as one, or not at all.
//!
//! The bundle is a TOML file naming the rest:
//!
//! ```toml
//! schema = "refund.cedarschema"      # Cedar schema format
//! policies = ["refund.cedar"]        # one or more policy files
//! mode = "enforce"                   # or "log_only" (shadow mode)
//! test_entities = "fixtures.json"    # records the test cases resolve against
//!
//! [agents.refund-bot]                # the principals, with their attributes
//! role = "support"
//! team = "desk"
//!
//! [[test]]                           # request → expected outcome, run at every load
//! name = "a small refund of the customer's own order runs"
//! principal = "refund-bot"
//! action = "issue_refund"
//! resource = { type = "Order", id = "#W1001" }
//! customer = "noah_brown_6181"
//! amount_cents = 2000
//! facts = { amount_is_unrefunded_items = true }   # optional: `context.facts`
//! expect = "allow"                   # allow | approval | deny
//! policy = "refund_small"            # optional: the policy that must decide
//! ```
//!
//! Loading fails, with the file and line, on: a TOML error or unknown key, a schema error, a
//! policy syntax error, a policy the strict validator rejects (a type error, an unknown attribute
//! or entity type, an unguarded optional attribute), a policy without `@id` or with a duplicate
//! one, an empty policy set, and any failing test case. A runtime never starts on a policy it has
//! not fully checked: there is no "allow on error".

use super::entities::{StaticEntities, uid};
use super::evaluate::{CallFacts, OutboundFacts, Outcome};
use crate::budget::Usage;
use cedar_policy::{
    ActionConstraint, Entity, PolicyId, PolicySet, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use miette::Diagnostic;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The line of the schema's `action` declaration naming `action` (1 when none does).
fn action_line(text: &str, action: &str) -> usize {
    text.lines()
        .position(|line| {
            let Some(rest) = line.trim_start().strip_prefix("action ") else { return false };
            let head = rest.split([';', '{']).next().unwrap_or_default();
            let names = head.split(" in ").next().unwrap_or_default();
            let names = names.split(" appliesTo").next().unwrap_or_default();
            names.split(',').any(|name| name.trim().trim_matches('"') == action)
        })
        .map_or(1, |index| index + 1)
}

/// A loaded, validated, tested policy bundle.
pub struct PolicyBundle {
    path: PathBuf,
    schema: Schema,
    /// The schema's file and text, to name the line of an action in a start-up error.
    schema_source: (String, String),
    /// Per action: only the policies whose action scope can match it. Cedar would find the
    /// others "not applicable" one by one; slicing them away at load keeps a decision to the
    /// handful of rules about that tool (and the answer is the same).
    sliced: HashMap<String, PolicySet>,
    /// Per action: its entity and its groups' entities (what `action in Action::"write"`
    /// needs), so a request carries a handful of entities instead of the whole hierarchy.
    action_entities: HashMap<String, Vec<Entity>>,
    /// Per agent: its entity, with `role` and `team`.
    agent_entities: HashMap<String, Entity>,
    annotations: HashMap<PolicyId, Annotations>,
    mode: Mode,
    tests: Vec<TestCase>,
}

/// Whether the policy's verdicts are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Denials deny and approvals are asked for.
    #[default]
    Enforce,
    /// Shadow mode: each verdict is recorded as it would have been, and the call proceeds. How a
    /// team rolls out a new rule: watch what it would have refused before it refuses anything.
    LogOnly,
}

/// What a policy's annotations say.
#[derive(Debug, Clone)]
struct Annotations {
    /// `@id`.
    label: String,
    /// `@reason`, or the id.
    reason: String,
    /// `@approval`, if the permit needs a human.
    approval: Option<String>,
    /// Its place in the bundle (files in order, policies in file order): determining policies
    /// are listed, and the first forbid chosen as the reason code, in this order.
    order: usize,
}

/// Why a bundle could not be loaded. Each names the file (and the line where there is one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {message}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        message: String,
    },
    /// The bundle file is not valid TOML or has an unknown key.
    #[error("`{path}` line {line}: {message}")]
    Bundle {
        /// The file.
        path: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The schema does not parse.
    #[error("schema `{path}` line {line}: {message}")]
    Schema {
        /// The file.
        path: String,
        /// The line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A policy file does not parse.
    #[error("policy file `{path}` line {line}: syntax error: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The strict validator rejects a policy against the schema.
    #[error(
        "policy file `{path}` line {line}: policy `{policy}` does not match the schema: {message}"
    )]
    Invalid {
        /// The file.
        path: String,
        /// The line.
        line: usize,
        /// The policy's `@id`.
        policy: String,
        /// What is wrong.
        message: String,
    },
    /// A policy has no `@id`, or shares one with another.
    #[error("policy file `{path}` line {line}: {message}")]
    Identity {
        /// The file.
        path: String,
        /// The line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No policy at all: everything would be denied, which is never what was meant.
    #[error("`{path}` holds no policy")]
    Empty {
        /// The bundle.
        path: String,
    },
    /// The test records or an agent's attributes are unusable.
    #[error("`{path}`: {message}")]
    Entities {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A test case's outcome is not the expected one.
    #[error("`{path}`: test `{name}` expected {expected}, got {got}")]
    TestFailed {
        /// The bundle.
        path: String,
        /// The test's name.
        name: String,
        /// What the test expects.
        expected: String,
        /// What the policies decided.
        got: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleFile {
    schema: String,
    policies: Vec<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    agents: BTreeMap<String, AgentAttributes>,
    #[serde(default)]
    test_entities: Option<String>,
    #[serde(default, rename = "test")]
    tests: Vec<TestCase>,
}

/// An agent's attributes, as policies see them (`principal.role`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentAttributes {
    role: String,
    team: String,
}

/// One request and the outcome it must get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    principal: String,
    action: String,
    #[serde(default)]
    resource: Option<ResourceName>,
    #[serde(default)]
    customer: Option<String>,
    #[serde(default = "default_task")]
    task: String,
    #[serde(default)]
    chain: Vec<String>,
    #[serde(default)]
    amount_cents: i64,
    #[serde(default)]
    args: Value,
    #[serde(default)]
    tainted: bool,
    #[serde(default)]
    untrusted_args: Vec<String>,
    #[serde(default)]
    repeated_call_id: bool,
    #[serde(default)]
    usage: Usage,
    #[serde(default)]
    facts: serde_json::Map<String, Value>,
    #[serde(default)]
    outbound: OutboundFacts,
    expect: String,
    #[serde(default)]
    policy: Option<String>,
    #[serde(skip)]
    entities: Option<StaticEntities>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceName {
    #[serde(rename = "type")]
    entity_type: String,
    id: String,
}

fn default_task() -> String {
    "T-test".to_owned()
}

impl PolicyBundle {
    /// Loads the bundle at `path`, checks everything, and runs its test cases.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = read(path)?;
        let file: BundleFile = toml::from_str(&text).map_err(|error| PolicyError::Bundle {
            path: shown.clone(),
            line: error.span().map_or(1, |span| line_of(&text, span.start)),
            message: error.message().to_owned(),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let schema_path = dir.join(&file.schema);
        let schema_text = read(&schema_path)?;
        let policy_files = file
            .policies
            .iter()
            .map(|name| {
                let policy_path = dir.join(name);
                Ok((policy_path.display().to_string(), read(&policy_path)?))
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        let mut bundle = Self::from_sources(
            &shown,
            (&schema_path.display().to_string(), &schema_text),
            &policy_files,
            &file.agents,
            file.mode,
        )?;
        let test_entities = match &file.test_entities {
            Some(name) => Some(StaticEntities::from_file(&dir.join(name)).map_err(|message| {
                PolicyError::Entities { path: dir.join(name).display().to_string(), message }
            })?),
            None => None,
        };
        bundle.tests = file
            .tests
            .into_iter()
            .map(|mut test| {
                test.entities.clone_from(&test_entities);
                test
            })
            .collect();
        bundle.run_tests()?;
        Ok(bundle)
    }

    /// The policy set, the action hierarchy and the agents, from sources already read: for
    /// callers that keep policies elsewhere than files.
    fn from_sources(
        bundle_path: &str,
        (schema_path, schema_text): (&str, &str),
        policy_files: &[(String, String)],
        agents: &BTreeMap<String, AgentAttributes>,
        mode: Mode,
    ) -> Result<Self, PolicyError> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(schema_text).map_err(|error| PolicyError::Schema {
                path: schema_path.to_owned(),
                line: first_line(&error, schema_text),
                message: error.to_string(),
            })?;

        let mut policies = PolicySet::new();
        let mut annotations = HashMap::new();
        // Where each policy came from, to put validation errors on the right line.
        let mut origin: HashMap<PolicyId, (usize, usize)> = HashMap::new();
        let mut labels = HashSet::new();
        for (file_index, (policy_path, text)) in policy_files.iter().enumerate() {
            let parsed = PolicySet::from_str(text).map_err(|error| PolicyError::Syntax {
                path: policy_path.clone(),
                line: first_line(&error, text),
                message: error.to_string(),
            })?;
            for policy in parsed.policies() {
                let line = policy_line(policy, text);
                let identity = |message: String| PolicyError::Identity {
                    path: policy_path.clone(),
                    line,
                    message,
                };
                let label = policy
                    .annotation("id")
                    .ok_or_else(|| {
                        identity(
                            "every policy needs an `@id(\"…\")`, the name the audit log shows"
                                .to_owned(),
                        )
                    })?
                    .to_owned();
                if !labels.insert(label.clone()) {
                    return Err(identity(format!("`@id(\"{label}\")` is used twice")));
                }
                let id = PolicyId::new(format!("{file_index}:{label}"));
                annotations.insert(
                    id.clone(),
                    Annotations {
                        reason: policy.annotation("reason").unwrap_or(&label).to_owned(),
                        approval: policy.annotation("approval").map(str::to_owned),
                        label: label.clone(),
                        order: annotations.len(),
                    },
                );
                origin.insert(id.clone(), (file_index, line));
                policies.add(policy.new_id(id)).map_err(|error| identity(error.to_string()))?;
            }
        }
        if policies.is_empty() {
            return Err(PolicyError::Empty { path: bundle_path.to_owned() });
        }

        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if let Some(error) = validation.validation_errors().next() {
            let id = error.policy_id();
            let (file_index, policy_line) = origin.get(id).copied().unwrap_or((0, 1));
            let (policy_path, text) = &policy_files[file_index];
            return Err(PolicyError::Invalid {
                path: policy_path.clone(),
                line: first_offset(error).map_or(policy_line, |offset| line_of(text, offset)),
                policy: annotations.get(id).map_or_else(|| id.to_string(), |a| a.label.clone()),
                message: error.to_string(),
            });
        }

        let actions = schema.action_entities().map_err(|error| PolicyError::Entities {
            path: schema_path.to_owned(),
            message: error.to_string(),
        })?;
        let mut action_entities = HashMap::new();
        for action in actions.iter() {
            let mut with_groups = vec![action.clone()];
            for group in actions.ancestors(&action.uid()).into_iter().flatten() {
                with_groups.extend(actions.get(group).cloned());
            }
            action_entities.insert(action.uid().id().unescaped().to_owned(), with_groups);
        }
        let sliced = slice_by_action(&policies, &action_entities)
            .map_err(|message| PolicyError::Entities { path: bundle_path.to_owned(), message })?;
        let mut agent_entities = HashMap::new();
        for (name, attributes) in agents {
            let entity = Entity::new(
                uid("Agent", name).map_err(|message| PolicyError::Entities {
                    path: bundle_path.to_owned(),
                    message,
                })?,
                HashMap::from([
                    ("role".to_owned(), RestrictedExpression::new_string(attributes.role.clone())),
                    ("team".to_owned(), RestrictedExpression::new_string(attributes.team.clone())),
                ]),
                HashSet::new(),
            )
            .map_err(|error| PolicyError::Entities {
                path: bundle_path.to_owned(),
                message: error.to_string(),
            })?;
            agent_entities.insert(name.clone(), entity);
        }
        Ok(Self {
            path: PathBuf::from(bundle_path),
            schema,
            schema_source: (schema_path.to_owned(), schema_text.to_owned()),
            sliced,
            action_entities,
            agent_entities,
            annotations,
            mode,
            tests: Vec::new(),
        })
    }

    /// The bundle's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Enforce or shadow.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Overrides the bundle's mode (for example from a command-line flag).
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// The schema the policies were validated against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// How many policies the bundle holds.
    pub fn len(&self) -> usize {
        self.annotations.len()
    }

    /// Whether the bundle holds no policy (never true for a loaded bundle).
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty()
    }

    /// How many test cases ran at load.
    pub fn test_count(&self) -> usize {
        self.tests.len()
    }

    /// Whether the schema declares an action for `tool`.
    pub fn has_action(&self, tool: &str) -> bool {
        self.action_entities.contains_key(tool)
    }

    /// Checks the bundle against the menu it will decide for, at start-up: every tool needs an
    /// action, and where the schema groups actions by effect (`read`, `write`, `irreversible`)
    /// each tool must sit in exactly the group of the effect its spec declares, and in
    /// `moves_money` exactly when it declares money moved. The tool's spec is the one source of
    /// truth: budgets and per-call tokens follow it, so a rule on `Action::"write"` must cover
    /// every tool they treat as a write. The error names the schema's file and the action's line.
    pub fn check_menu<'a>(
        &self,
        specs: impl IntoIterator<Item = &'a agent_core::ToolSpec>,
    ) -> Result<(), PolicyError> {
        let (path, text) = &self.schema_source;
        let declared = |group: &str| self.action_entities.contains_key(group);
        for spec in specs {
            let tool = spec.name.as_str();
            let problem = |message: String| PolicyError::Schema {
                path: path.clone(),
                line: action_line(text, tool),
                message,
            };
            let Some(with_groups) = self.action_entities.get(tool) else {
                return Err(problem(format!(
                    "the menu has `{tool}` but the schema declares no `action {tool}`: every call \
                     to it would be a `policy_error`"
                )));
            };
            let groups: HashSet<String> = with_groups
                .iter()
                .skip(1)
                .map(|entity| entity.uid().id().unescaped().to_owned())
                .collect();
            let effects = ["read", "write", "irreversible"];
            if effects.iter().any(|group| declared(group)) {
                let expected = match spec.effect {
                    agent_core::EffectClass::Read => "read",
                    agent_core::EffectClass::Write => "write",
                    agent_core::EffectClass::Irreversible => "irreversible",
                };
                let found: Vec<&str> =
                    effects.into_iter().filter(|group| groups.contains(*group)).collect();
                if found != [expected] {
                    return Err(problem(format!(
                        "`{tool}` is declared `{expected}` by its tool, but the schema puts it in \
                         [{}]: put it `in [{expected}]`, or rules about {expected} tools miss it",
                        found.join(", ")
                    )));
                }
            }
            if declared("moves_money") && groups.contains("moves_money") != spec.money.is_some() {
                let says = if spec.money.is_some() { "moves money" } else { "moves no money" };
                return Err(problem(format!(
                    "`{tool}` {says} by its tool's declaration, but the schema says otherwise: \
                     match its `moves_money` group to the tool"
                )));
            }
        }
        Ok(())
    }

    /// The policies that can apply to `action`; `None` for an action the schema does not know.
    pub(crate) fn policies_for(&self, action: &str) -> Option<&PolicySet> {
        self.sliced.get(action)
    }

    /// The entities every request for `action` by `agent` needs: the action with its groups,
    /// and the agent.
    pub(crate) fn request_entities(
        &self,
        action: &str,
        agent: &str,
    ) -> impl Iterator<Item = &Entity> {
        let action = self.action_entities.get(action).into_iter().flatten();
        action.chain(self.agent_entities.get(agent))
    }

    /// Policy ids in bundle order.
    pub(crate) fn in_order<'a>(
        &self,
        ids: impl Iterator<Item = &'a PolicyId>,
    ) -> Vec<&'a PolicyId> {
        let mut ids: Vec<&PolicyId> = ids.collect();
        ids.sort_by_key(|id| self.annotations.get(*id).map_or(usize::MAX, |a| a.order));
        ids
    }

    pub(crate) fn label(&self, id: &PolicyId) -> String {
        self.annotations.get(id).map_or_else(|| id.to_string(), |a| a.label.clone())
    }

    pub(crate) fn reason(&self, id: &PolicyId) -> String {
        self.annotations.get(id).map_or_else(|| id.to_string(), |a| a.reason.clone())
    }

    pub(crate) fn approval(&self, id: &PolicyId) -> Option<String> {
        self.annotations.get(id).and_then(|a| a.approval.clone())
    }

    fn run_tests(&self) -> Result<(), PolicyError> {
        for test in &self.tests {
            let resolved = match (&test.resource, &test.entities) {
                (Some(resource), Some(entities)) => {
                    use super::entities::EntityResolver;
                    entities
                        .resolve(&resource.entity_type, &resource.id)
                        .map_err(|message| PolicyError::Entities {
                            path: self.path.display().to_string(),
                            message,
                        })?
                        .unwrap_or_default()
                }
                _ => Vec::new(),
            };
            let mut chain = test.chain.clone();
            if chain.is_empty() {
                chain.push(test.principal.clone());
            }
            let facts = CallFacts {
                agent: &test.principal,
                chain,
                action: &test.action,
                resource: test.resource.as_ref().map(|r| (r.entity_type.as_str(), r.id.as_str())),
                task: &test.task,
                customer: test.customer.as_deref(),
                calls_made: 0,
                repeated_call_id: test.repeated_call_id,
                amount_cents: test.amount_cents,
                args: &test.args,
                tainted: test.tainted,
                untrusted_args: test.untrusted_args.clone(),
                usage: test.usage,
                facts: &test.facts,
                outbound: &test.outbound,
            };
            let evaluation = self.evaluate(&facts, &resolved);
            let kind = evaluation.outcome.kind();
            let decided_by_expected = match &test.policy {
                None => true,
                Some(expected) => evaluation.policies.contains(expected),
            };
            if kind != test.expect || !decided_by_expected {
                let got = match &evaluation.outcome {
                    Outcome::Deny { code, reason } => format!("deny ({code}: {reason})"),
                    other => format!("{} by {:?}", other.kind(), evaluation.policies),
                };
                let expected = match &test.policy {
                    Some(policy) => format!("{} by `{policy}`", test.expect),
                    None => test.expect.clone(),
                };
                return Err(PolicyError::TestFailed {
                    path: self.path.display().to_string(),
                    name: test.name.clone(),
                    expected,
                    got,
                });
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for PolicyBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyBundle")
            .field("path", &self.path)
            .field("policies", &self.annotations.len())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// For each action, the policies whose action scope can match it: unconstrained, naming it, or
/// naming a group it belongs to.
fn slice_by_action(
    policies: &PolicySet,
    action_entities: &HashMap<String, Vec<Entity>>,
) -> Result<HashMap<String, PolicySet>, String> {
    let mut sliced = HashMap::new();
    for (action, with_groups) in action_entities {
        let mut set = PolicySet::new();
        let matches =
            |uid: &cedar_policy::EntityUid| with_groups.iter().any(|entity| entity.uid() == *uid);
        for policy in policies.policies() {
            let applies = match policy.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(uid) => {
                    with_groups.first().is_some_and(|own| own.uid() == uid)
                }
                ActionConstraint::In(uids) => uids.iter().any(matches),
            };
            if applies {
                set.add(policy.clone()).map_err(|error| error.to_string())?;
            }
        }
        sliced.insert(action.clone(), set);
    }
    Ok(sliced)
}

fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|error| PolicyError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    })
}

/// The line (from 1) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).map_or(1, |before| before.matches('\n').count() + 1)
}

/// The first source offset a diagnostic points at, looking into related diagnostics too.
fn first_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    if let Some(label) = diagnostic.labels().and_then(|mut labels| labels.next()) {
        return Some(label.offset());
    }
    diagnostic.related().and_then(|mut related| related.find_map(first_offset))
}

fn first_line(diagnostic: &dyn Diagnostic, text: &str) -> usize {
    first_offset(diagnostic).map_or(1, |offset| line_of(text, offset))
}

/// The line a policy starts on (its annotations included).
fn policy_line(policy: &cedar_policy::Policy, text: &str) -> usize {
    // The policy's own text is a slice of the file; find where it starts.
    let own = policy.to_string();
    let head: String = own.lines().next().unwrap_or_default().to_owned();
    text.find(head.trim()).map_or(1, |offset| line_of(text, offset))
}
