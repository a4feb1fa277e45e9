//! Records: the desk's database, in the exact shape of the tau2-bench retail domain.
//!
//! `products`, `users` and `orders` are objects keyed by id, as in tau2's `db.json`, so its file
//! loads unchanged. Every record keeps the fields it does not know in `extra` and writes them back,
//! so loading and saving a file loses nothing. Maps keep their keys in file order, which is also
//! the order tau2 searches them in (`find_user_id_by_email` returns the first match).
//!
//! The desk adds what a support desk needs around tau2's records: a ticket queue (`tickets`), the
//! mail it sent (`outbox`) and the hand-offs to people (`transfers`). A file without them, such as
//! tau2's, is simply a desk with none.
//!
//! Money is kept as the JSON number the file holds ([`Money`]) and computed in integer cents.

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Fields a record does not know, kept so that a round trip loses nothing.
pub type Extra = Map<String, Value>;

/// The whole desk: tau2's three tables plus the desk's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Database {
    /// The catalogue, keyed by product id.
    pub products: IndexMap<String, Product>,
    /// The customers, keyed by user id.
    pub users: IndexMap<String, User>,
    /// The orders, keyed by order id (`#W` and seven digits).
    pub orders: IndexMap<String, Order>,
    /// The ticket queue, keyed by ticket id (not in tau2's file).
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub tickets: IndexMap<String, Ticket>,
    /// The e-mails the desk sent, oldest first (not in tau2's file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Email>,
    /// The conversations handed to people, oldest first (not in tau2's file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<Transfer>,
    /// Top-level keys the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A product type in the catalogue, such as "T-Shirt", with its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// The product's name.
    pub name: String,
    /// Its id, ten digits; not an item id.
    pub product_id: String,
    /// Its variants, keyed by item id.
    pub variants: IndexMap<String, Variant>,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One variant of a product: the thing that is ordered, shipped and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Its id, ten digits; not a product id.
    pub item_id: String,
    /// What makes it this variant (`{"color": "blue", "size": "M"}`), written by the seller.
    pub options: Map<String, Value>,
    /// Whether it can be ordered now.
    pub available: bool,
    /// Its price, in dollars.
    pub price: Money,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Its id, such as `noah_brown_6181`.
    pub user_id: String,
    /// The customer's name.
    pub name: PersonName,
    /// The default shipping address.
    pub address: Address,
    /// The customer's e-mail address.
    pub email: String,
    /// The customer's payment methods, keyed by id.
    pub payment_methods: IndexMap<String, PaymentMethod>,
    /// The customer's order ids.
    pub orders: Vec<String>,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A customer's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonName {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A postal address, as the customer wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    /// First line, such as `123 Main St`.
    pub address1: String,
    /// Second line, such as `Apt 1`, or empty.
    pub address2: String,
    /// City.
    pub city: String,
    /// Country, such as `USA`.
    pub country: String,
    /// State, such as `CA`.
    pub state: String,
    /// Zip code.
    pub zip: String,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One of a customer's ways to pay: a credit card, a PayPal account or a gift card.
///
/// tau2 writes the kind in `source` and the kind's own fields beside it, so this is one flat
/// record with the kind-specific fields optional, rather than a tagged enum: a flattened enum
/// next to a flattened `extra` map would capture its own fields twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentMethod {
    /// The kind.
    pub source: PaymentSource,
    /// Its id, such as `credit_card_7815826` or `gift_card_1725971`.
    pub id: String,
    /// A credit card's brand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// A credit card's last four digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_four: Option<String>,
    /// A gift card's balance, in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<Money>,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl PaymentMethod {
    /// Whether this is a gift card (whose balance moves when it pays or is refunded).
    pub fn is_gift_card(&self) -> bool {
        self.source == PaymentSource::GiftCard
    }

    /// A gift card's balance in cents (a gift card without a balance has none: 0); `None` for
    /// other kinds.
    pub fn gift_card_cents(&self) -> Option<i64> {
        self.is_gift_card().then(|| self.balance.as_ref().map_or(0, Money::cents))
    }
}

/// The kind of a payment method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentSource {
    /// A credit card (`brand`, `last_four`).
    CreditCard,
    /// A PayPal account.
    Paypal,
    /// A gift card (`balance`).
    GiftCard,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Its id, such as `#W2611340`.
    pub order_id: String,
    /// The customer who placed it.
    pub user_id: String,
    /// Where it ships.
    pub address: Address,
    /// What was ordered; the same item may appear more than once.
    pub items: Vec<OrderItem>,
    /// Where it stands.
    pub status: OrderStatus,
    /// The shipments.
    pub fulfillments: Vec<Fulfillment>,
    /// Every payment and refund, oldest first; the first is the original payment.
    pub payment_history: Vec<Transaction>,
    /// Why it was cancelled, once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// The items asked to be exchanged, sorted (set by an exchange request, as tau2 does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_items: Option<Vec<String>>,
    /// The items they are exchanged for, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_new_items: Option<Vec<String>>,
    /// The payment method that pays or receives the price difference of an exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_payment_method_id: Option<String>,
    /// The price difference of an exchange, new minus old, in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_price_difference: Option<Money>,
    /// The items asked to be returned, sorted (set by a return request, as tau2 does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_items: Option<Vec<String>>,
    /// The payment method that receives the refund of a return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_payment_method_id: Option<String>,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Order {
    /// Everything paid on the order, in cents.
    pub fn paid_cents(&self) -> i64 {
        self.sum_cents(TransactionType::Payment)
    }

    /// Everything refunded on the order, in cents.
    pub fn refunded_cents(&self) -> i64 {
        self.sum_cents(TransactionType::Refund)
    }

    /// What is left to refund, in cents: paid minus refunded, never below zero.
    pub fn refundable_cents(&self) -> i64 {
        (self.paid_cents() - self.refunded_cents()).max(0)
    }

    /// The payment method of the original payment (the first in the history), if any.
    pub fn original_payment_method(&self) -> Option<&str> {
        self.payment_history.first().map(|payment| payment.payment_method_id.as_str())
    }

    /// The payment methods its history names, each once, in order of first use.
    pub fn payment_methods_used(&self) -> Vec<String> {
        let mut used: Vec<String> = Vec::new();
        for transaction in &self.payment_history {
            if !used.contains(&transaction.payment_method_id) {
                used.push(transaction.payment_method_id.clone());
            }
        }
        used
    }

    fn sum_cents(&self, kind: TransactionType) -> i64 {
        self.payment_history
            .iter()
            .filter(|transaction| transaction.transaction_type == kind)
            .map(|transaction| transaction.amount.cents())
            .sum()
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The product's name.
    pub name: String,
    /// The product.
    pub product_id: String,
    /// The variant.
    pub item_id: String,
    /// The price paid, in dollars.
    pub price: Money,
    /// The variant's options.
    pub options: Map<String, Value>,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where an order stands, spelled as tau2 spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Placed, not yet processed: it can be cancelled or modified.
    #[serde(rename = "pending")]
    Pending,
    /// Pending, and its items were modified once: only its address and payment can change now.
    #[serde(rename = "pending (item modified)")]
    PendingItemModified,
    /// Being packed and shipped.
    #[serde(rename = "processed")]
    Processed,
    /// Delivered: it can be returned or exchanged, once.
    #[serde(rename = "delivered")]
    Delivered,
    /// Cancelled and refunded.
    #[serde(rename = "cancelled")]
    Cancelled,
    /// A return was requested.
    #[serde(rename = "return requested")]
    ReturnRequested,
    /// An exchange was requested.
    #[serde(rename = "exchange requested")]
    ExchangeRequested,
}

impl OrderStatus {
    /// The status as tau2 writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::PendingItemModified => "pending (item modified)",
            Self::Processed => "processed",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::ReturnRequested => "return requested",
            Self::ExchangeRequested => "exchange requested",
        }
    }
}

/// A shipment: tracking numbers and the items in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfillment {
    /// The carrier's tracking ids.
    pub tracking_id: Vec<String>,
    /// The items shipped.
    pub item_ids: Vec<String>,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A payment or refund on an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Payment or refund.
    pub transaction_type: TransactionType,
    /// How much, in dollars.
    pub amount: Money,
    /// The payment method that paid or was refunded.
    pub payment_method_id: String,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Transaction {
    /// A new transaction of `cents`.
    pub fn new(kind: TransactionType, cents: i64, payment_method_id: impl Into<String>) -> Self {
        Self {
            transaction_type: kind,
            amount: Money::from_cents(cents),
            payment_method_id: payment_method_id.into(),
            extra: Extra::new(),
        }
    }
}

/// Whether money came in or went back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionType {
    /// The customer paid.
    Payment,
    /// The customer was refunded.
    Refund,
}

/// An amount of money in dollars, kept as the JSON number the file wrote (so `60` stays `60` and
/// `54.04` stays `54.04`) and computed with in integer cents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(Number);

impl Money {
    /// An amount of `cents`, written as dollars with two decimals at most (`1999` → `19.99`).
    pub fn from_cents(cents: i64) -> Self {
        let dollars = cents as f64 / 100.0;
        // INVARIANT: an i64 divided by 100 is finite, and `from_f64` refuses only NaN and
        // infinities.
        #[expect(clippy::expect_used, reason = "a finite float is always a JSON number")]
        let number = Number::from_f64(dollars).expect("finite amount");
        Self(number)
    }

    /// The amount in cents, rounded to the nearest cent.
    pub fn cents(&self) -> i64 {
        (self.dollars() * 100.0).round() as i64
    }

    /// The amount in dollars.
    pub fn dollars(&self) -> f64 {
        self.0.as_f64().unwrap_or(0.0)
    }
}

/// A support ticket: a customer's message to the desk and the desk's replies.
///
/// Its subject and body are written by the customer (or by whoever got into their account):
/// untrusted content, which is why the tools that show them mark their output so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Its id, such as `T-1001`.
    pub ticket_id: String,
    /// The customer who wrote it.
    pub user_id: String,
    /// The subject line.
    pub subject: String,
    /// The message.
    pub body: String,
    /// Open or closed.
    pub status: TicketStatus,
    /// The desk's replies, oldest first.
    #[serde(default)]
    pub replies: Vec<Reply>,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Whether a ticket still needs an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting for the desk.
    Open,
    /// Done.
    Closed,
}

/// A reply on a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Who wrote it: `agent` for the desk's agent.
    pub author: String,
    /// The text sent to the customer.
    pub message: String,
    /// Fields the desk does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An e-mail the desk sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The message.
    pub body: String,
}

/// A conversation handed to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The agent's summary of the customer's issue.
    pub summary: String,
    /// The parts of the summary nothing we hold vouches for (an amount, an id, a link that only
    /// the ticket gave), each with its kind, its text and where it was seen: the person taking
    /// the hand-off reads them as claims, not facts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unvouched: Vec<Value>,
}

/// Where a file's shape went wrong: the JSON path of the record and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at `{at}`: {message}")]
pub struct ShapeError {
    /// The path to the record, such as `orders.#W2611340`.
    pub at: String,
    /// What was wrong, such as "missing field `status`".
    pub message: String,
}

impl Database {
    /// Reads a database from parsed JSON, record by record, so that a wrong shape is reported
    /// with the record it is in (a derived whole-file parse would lose the position).
    pub fn from_value(value: Value) -> Result<Self, ShapeError> {
        let Value::Object(mut top) = value else {
            return Err(shape("$", "the database must be a JSON object"));
        };
        let products = keyed(&mut top, "products", true, |product: &Product| &product.product_id)?;
        let users = keyed(&mut top, "users", true, |user: &User| &user.user_id)?;
        let orders = keyed(&mut top, "orders", true, |order: &Order| &order.order_id)?;
        let tickets = keyed(&mut top, "tickets", false, |ticket: &Ticket| &ticket.ticket_id)?;
        let outbox = list(&mut top, "outbox")?;
        let transfers = list(&mut top, "transfers")?;
        Ok(Self { products, users, orders, tickets, outbox, transfers, extra: top })
    }

    /// Reads a ticket queue file: an object of tickets keyed by ticket id.
    pub fn tickets_from_value(value: Value) -> Result<IndexMap<String, Ticket>, ShapeError> {
        let mut wrapper = Map::new();
        wrapper.insert("tickets".to_owned(), value);
        keyed(&mut wrapper, "tickets", true, |ticket: &Ticket| &ticket.ticket_id)
    }

    /// The item (variant) `item_id`, wherever it is in the catalogue, with its product.
    pub fn item(&self, item_id: &str) -> Option<(&Product, &Variant)> {
        self.products
            .values()
            .find_map(|product| product.variants.get(item_id).map(|variant| (product, variant)))
    }
}

/// Takes the table `key` out of `top`: an object of records keyed by their own id.
fn keyed<T: DeserializeOwned>(
    top: &mut Map<String, Value>,
    key: &str,
    required: bool,
    id_of: impl Fn(&T) -> &String,
) -> Result<IndexMap<String, T>, ShapeError> {
    let table = match top.remove(key) {
        Some(Value::Object(table)) => table,
        Some(_) => return Err(shape(key, "must be an object keyed by id")),
        None if required => return Err(shape("$", &format!("missing the `{key}` table"))),
        None => return Ok(IndexMap::new()),
    };
    let mut records = IndexMap::with_capacity(table.len());
    for (id, record) in table {
        let at = format!("{key}.{id}");
        let record: T =
            serde_json::from_value(record).map_err(|error| shape(&at, &error.to_string()))?;
        if id_of(&record) != &id {
            return Err(shape(&at, &format!("the record's own id is `{}`", id_of(&record))));
        }
        records.insert(id, record);
    }
    Ok(records)
}

/// Takes the optional list `key` out of `top`.
fn list<T: DeserializeOwned>(
    top: &mut Map<String, Value>,
    key: &str,
) -> Result<Vec<T>, ShapeError> {
    match top.remove(key) {
        None => Ok(Vec::new()),
        Some(value) => {
            serde_json::from_value(value).map_err(|error| shape(key, &error.to_string()))
        }
    }
}

fn shape(at: &str, message: &str) -> ShapeError {
    ShapeError { at: at.to_owned(), message: message.to_owned() }
}
