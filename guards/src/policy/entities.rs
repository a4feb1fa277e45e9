//! Entities: the records a call touches, resolved from its arguments for Cedar to reason about.
//!
//! A tool declares which argument names its resource (`order_id` → `Order`); an
//! [`EntityResolver`] turns that id into the entity's record (the order's owner, status, what was
//! paid and refunded) plus the entities it refers to (the owner's record), in a JSON form that is
//! converted to Cedar values here. Values: strings, integers, booleans, lists (sets), objects
//! (records), and entity references written `{"__entity": {"type": "User", "id": "…"}}`.
//! Floats are refused: money is integer cents.

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

/// Finds the records a call touches.
pub trait EntityResolver: Send + Sync {
    /// The entity `entity_type::id` and every entity its attributes refer to that policies may
    /// read (an order's owner, say); `Ok(None)` if it does not exist.
    fn resolve(&self, entity_type: &str, id: &str) -> Result<Option<Vec<ResolvedEntity>>, String>;

    /// What the system of record says about one call beyond its resource record: the money it
    /// moves, for tools that declare [`MoneyMoved::Resolved`](agent_core::MoneyMoved::Resolved)
    /// (a return is worth the price of the items it names), and facts worked out from the
    /// arguments and the records they name, which policies read as `context.facts` ("the amount
    /// is exactly the price of items nothing has paid back"). The default knows nothing: a tool
    /// that needs its money resolved is then refused.
    fn derive(&self, _tool: &str, _args: &Value) -> Result<DerivedFacts, String> {
        Ok(DerivedFacts::default())
    }
}

/// What a resolver works out about one call (see [`EntityResolver::derive`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DerivedFacts {
    /// The money the call moves, in integer cents, when the records determine it.
    pub money_cents: Option<i64>,
    /// Facts for `context.facts`: strings, integers, booleans, sets and records.
    pub facts: Map<String, Value>,
}

/// One entity's record in JSON form.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedEntity {
    /// Its type, such as `Order`.
    pub entity_type: String,
    /// Its id, such as `#W2611340`.
    pub id: String,
    /// Its attributes.
    pub attrs: Map<String, Value>,
}

/// Entities held in memory, loaded from JSON shaped `{"Order": {"#W1": {attrs…}}, "User": {…}}`.
/// Resolving an entity also returns every entity its attributes refer to, one level deep.
#[derive(Debug, Clone, Default)]
pub struct StaticEntities {
    by_type: HashMap<String, HashMap<String, Map<String, Value>>>,
    /// Per tool, the facts every call of it derives (see [`StaticEntities::deriving`]).
    derived: HashMap<String, DerivedFacts>,
}

impl StaticEntities {
    /// Entities from a JSON value of the shape above.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let types = value.as_object().ok_or("entities must be a JSON object keyed by type")?;
        let mut by_type = HashMap::new();
        for (entity_type, entities) in types {
            let entities = entities.as_object().ok_or_else(|| {
                format!("entities of type `{entity_type}` must be an object keyed by id")
            })?;
            let mut by_id = HashMap::new();
            for (id, attrs) in entities {
                let attrs = attrs.as_object().ok_or_else(|| {
                    format!("`{entity_type}::{id}` must be an object of attributes")
                })?;
                by_id.insert(id.clone(), attrs.clone());
            }
            by_type.insert(entity_type.clone(), by_id);
        }
        Ok(Self { by_type, derived: HashMap::new() })
    }

    /// Says that every call of `tool` derives `facts`, as a system of record would work them out
    /// (for tests and fixtures: a desk derives them from the records a call names).
    #[must_use]
    pub fn deriving(mut self, tool: &str, facts: DerivedFacts) -> Self {
        self.derived.insert(tool.to_owned(), facts);
        self
    }

    /// Entities from a JSON file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("`{}`: {error}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|error| format!("`{}`: {error}", path.display()))?;
        Self::from_json(&value).map_err(|error| format!("`{}`: {error}", path.display()))
    }

    /// Adds or replaces one entity.
    pub fn insert(&mut self, entity_type: &str, id: &str, attrs: Map<String, Value>) {
        self.by_type.entry(entity_type.to_owned()).or_default().insert(id.to_owned(), attrs);
    }

    fn get(&self, entity_type: &str, id: &str) -> Option<ResolvedEntity> {
        self.by_type.get(entity_type)?.get(id).map(|attrs| ResolvedEntity {
            entity_type: entity_type.to_owned(),
            id: id.to_owned(),
            attrs: attrs.clone(),
        })
    }
}

impl EntityResolver for StaticEntities {
    fn derive(&self, tool: &str, _args: &Value) -> Result<DerivedFacts, String> {
        Ok(self.derived.get(tool).cloned().unwrap_or_default())
    }

    fn resolve(&self, entity_type: &str, id: &str) -> Result<Option<Vec<ResolvedEntity>>, String> {
        let Some(entity) = self.get(entity_type, id) else { return Ok(None) };
        let mut found = vec![];
        for value in entity.attrs.values() {
            if let Some(referred) =
                entity_reference(value).and_then(|(kind, referred)| self.get(kind, referred))
            {
                found.push(referred);
            }
        }
        found.insert(0, entity);
        Ok(Some(found))
    }
}

/// `{"__entity": {"type": T, "id": I}}` → `(T, I)`.
pub(crate) fn entity_reference(value: &Value) -> Option<(&str, &str)> {
    let reference = value.get("__entity")?;
    Some((reference.get("type")?.as_str()?, reference.get("id")?.as_str()?))
}

/// The Cedar uid `entity_type::"id"`.
pub(crate) fn uid(entity_type: &str, id: &str) -> Result<EntityUid, String> {
    let type_name = EntityTypeName::from_str(entity_type)
        .map_err(|error| format!("invalid entity type `{entity_type}`: {error}"))?;
    Ok(EntityUid::from_type_name_and_id(type_name, EntityId::new(id)))
}

/// A resolved record as a Cedar entity.
pub(crate) fn to_cedar(entity: &ResolvedEntity) -> Result<Entity, String> {
    let uid = uid(&entity.entity_type, &entity.id)?;
    let mut attrs = HashMap::with_capacity(entity.attrs.len());
    for (name, value) in &entity.attrs {
        let expression = to_expression(value)
            .map_err(|error| format!("`{}::{}`.{name}: {error}", entity.entity_type, entity.id))?;
        attrs.insert(name.clone(), expression);
    }
    Entity::new(uid, attrs, HashSet::new()).map_err(|error| error.to_string())
}

/// A JSON value as a Cedar value.
pub(crate) fn to_expression(value: &Value) -> Result<RestrictedExpression, String> {
    Ok(match value {
        Value::String(text) => RestrictedExpression::new_string(text.clone()),
        Value::Bool(flag) => RestrictedExpression::new_bool(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => RestrictedExpression::new_long(integer),
            None => return Err(format!("{number} is not an integer (money is integer cents)")),
        },
        Value::Array(items) => RestrictedExpression::new_set(
            items.iter().map(to_expression).collect::<Result<Vec<_>, _>>()?,
        ),
        Value::Object(fields) => match entity_reference(value) {
            Some((entity_type, id)) => RestrictedExpression::new_entity_uid(uid(entity_type, id)?),
            None => RestrictedExpression::new_record(
                fields
                    .iter()
                    .map(|(name, field)| Ok((name.clone(), to_expression(field)?)))
                    .collect::<Result<Vec<_>, String>>()?,
            )
            .map_err(|error| error.to_string())?,
        },
        Value::Null => return Err("null has no Cedar value".to_owned()),
    })
}
