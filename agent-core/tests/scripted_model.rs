//! The scripted model: turns replayed in order, tool-use ids, exhaustion and recorded requests.

use agent_core::model::{
    ContentBlock, Message, Model, ModelRequest, Role, ScriptedCall, ScriptedModel, ScriptedTurn,
    StopReason, ToolDefinition,
};
use serde_json::json;

fn request(messages: Vec<Message>, tools: &[&str]) -> ModelRequest {
    ModelRequest {
        model: "ignored".to_owned(),
        max_tokens: 256,
        system: None,
        messages,
        tools: tools
            .iter()
            .map(|name| ToolDefinition {
                name: (*name).to_owned(),
                description: format!("the {name} tool"),
                input_schema: json!({ "type": "object" }),
            })
            .collect(),
    }
}

fn ask(text: &str) -> ModelRequest {
    request(vec![Message::user_text(text)], &["lookup", "refund"])
}

#[tokio::test]
async fn several_calls_in_one_turn_get_ids_counted_across_the_script() {
    let model = ScriptedModel::new(vec![
        ScriptedTurn::tools(vec![
            ScriptedCall::new("lookup", json!({ "order_id": "A-1" })),
            ScriptedCall::new("refund", json!({ "order_id": "A-1", "cents": 500 })),
        ])
        .with_text("the customer asked for a refund"),
        ScriptedTurn::tool("refund", json!({ "order_id": "A-2", "cents": 1 })),
        ScriptedTurn::text("all done"),
    ]);

    let first = model.respond(&ask("refund A-1")).await.unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert_eq!(
        first.content,
        vec![
            ContentBlock::Text { text: "the customer asked for a refund".to_owned() },
            ContentBlock::ToolUse {
                id: "toolu_scripted_1".to_owned(),
                name: "lookup".to_owned(),
                input: json!({ "order_id": "A-1" }),
            },
            ContentBlock::ToolUse {
                id: "toolu_scripted_2".to_owned(),
                name: "refund".to_owned(),
                input: json!({ "order_id": "A-1", "cents": 500 }),
            },
        ]
    );

    let second = model.respond(&ask("and A-2")).await.unwrap();
    assert_eq!(second.stop_reason, StopReason::ToolUse);
    assert_eq!(second.text(), "", "a call without stated text has no text block");
    let calls: Vec<_> = second.tool_uses().collect();
    assert_eq!(
        calls,
        vec![("toolu_scripted_3", "refund", &json!({ "order_id": "A-2", "cents": 1 }))]
    );

    let third = model.respond(&ask("thanks")).await.unwrap();
    assert_eq!(third.stop_reason, StopReason::EndTurn);
    assert_eq!(third.content, vec![ContentBlock::Text { text: "all done".to_owned() }]);
    assert_eq!(third.tool_uses().count(), 0);
}

#[tokio::test]
async fn an_exhausted_script_ends_every_turn() {
    let model = ScriptedModel::new(vec![ScriptedTurn::text("only line")]);
    assert_eq!(model.remaining(), 1);
    model.respond(&ask("one")).await.unwrap();
    assert_eq!(model.remaining(), 0);

    for _ in 0..2 {
        let response = model.respond(&ask("more")).await.unwrap();
        assert_eq!(response.stop_reason, StopReason::EndTurn);
        assert_eq!(response.text(), "(end of script)");
        assert_eq!(response.tool_uses().count(), 0);
    }

    let empty = ScriptedModel::new(Vec::new());
    assert_eq!(empty.respond(&ask("hello")).await.unwrap().text(), "(end of script)");
}

#[tokio::test]
async fn every_request_is_recorded_with_its_tool_results_and_tools() {
    let model = ScriptedModel::new(vec![
        ScriptedTurn::tool("refund", json!({ "order_id": "A-1", "cents": 500 })),
        ScriptedTurn::text("I could not refund that."),
    ]);
    assert!(model.requests().is_empty());

    let first_request = ask("refund A-1");
    let first = model.respond(&first_request).await.unwrap();
    let (call_id, _, _) = first.tool_uses().next().unwrap();
    let mut messages = first_request.messages.clone();
    messages.push(Message { role: Role::Assistant, content: first.content.clone() });
    messages.push(Message {
        role: Role::User,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: call_id.to_owned(),
            content: "refused by policy".to_owned(),
            is_error: true,
        }],
    });
    let second_request = request(messages, &["lookup"]);
    model.respond(&second_request).await.unwrap();

    let recorded = model.requests();
    assert_eq!(recorded, vec![first_request, second_request]);
    let advertised: Vec<_> = recorded[1].tools.iter().map(|tool| tool.name.as_str()).collect();
    assert_eq!(advertised, ["lookup"]);
    assert_eq!(
        recorded[1].messages[2].content,
        vec![ContentBlock::ToolResult {
            tool_use_id: "toolu_scripted_1".to_owned(),
            content: "refused by policy".to_owned(),
            is_error: true,
        }]
    );
}

#[tokio::test]
async fn describes_itself_as_scripted() {
    let model = ScriptedModel::new(Vec::new());
    assert_eq!(model.describe(), "scripted");
    let response = model.respond(&ask("hi")).await.unwrap();
    assert_eq!(response.model, "scripted");
    assert_eq!(response.request_id, None);
}

#[test]
fn with_text_adds_the_reason_to_any_turn() {
    let plain = ScriptedTurn::tool("lookup", json!({}));
    let explained = plain.clone().with_text("checking first");
    assert_ne!(plain, explained);
    assert_eq!(
        ScriptedTurn::tools(vec![ScriptedCall::new("lookup", json!({}))])
            .with_text("checking first"),
        explained
    );
}
