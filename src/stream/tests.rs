use super::*;
use futures::stream;

const FULL: &str = "event: conversation\ndata: {\"conversation_id\":\"conv_1\"}\n\n\
: keep-alive\n\n\
event: tool_started\ndata: {\"tool_name\":\"create_payment\",\"amount\":\"25.00\"}\n\n\
event: tool_completed\ndata: {\"tool_name\":\"create_payment\"}\n\n\
event: text_delta\ndata: {\"text\":\"Paid \\u00a325 \"}\n\n\
event: text_delta\ndata: {\"text\":\"to Bob.\"}\n\n\
event: reply\ndata: {\"text\":\"Paid \\u00a325 to Bob.\"}\n\n";

fn chunks(parts: Vec<Vec<u8>>) -> ChatStream {
    let s = stream::iter(
        parts
            .into_iter()
            .map(|p| Ok::<_, std::io::Error>(Bytes::from(p))),
    );
    ChatStream::from_bytes(s, None)
}

async fn run(parts: Vec<Vec<u8>>) -> Vec<std::result::Result<ChatEvent, String>> {
    chunks(parts)
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
        .await
}

fn expected_full() -> Vec<ChatEvent> {
    vec![
        ChatEvent::Conversation {
            conversation_id: "conv_1".into(),
        },
        ChatEvent::ToolStarted(ToolEvent {
            tool_name: "create_payment".into(),
            error: None,
            data: serde_json::json!({"tool_name": "create_payment", "amount": "25.00"}),
        }),
        ChatEvent::ToolCompleted(ToolEvent {
            tool_name: "create_payment".into(),
            error: None,
            data: serde_json::json!({"tool_name": "create_payment"}),
        }),
        ChatEvent::TextDelta {
            text: "Paid £25 ".into(),
        },
        ChatEvent::TextDelta {
            text: "to Bob.".into(),
        },
        ChatEvent::Reply(StreamedReply {
            text: "Paid £25 to Bob.".into(),
            conversation_id: Some("conv_1".into()),
            tools: vec!["create_payment".into()],
            data: serde_json::json!({"text": "Paid £25 to Bob."}),
        }),
    ]
}

#[tokio::test]
async fn a_whole_stream_gives_typed_events_and_ends_after_the_reply() {
    let got = run(vec![FULL.as_bytes().to_vec()]).await;
    let want: Vec<_> = expected_full().into_iter().map(Ok).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn an_endless_event_is_cut_at_the_limit_not_buffered() {
    // One data line that never ends, then many lines of one event that never ends: both
    // stop with TooLarge once the limit is passed, in any chunking.
    let line = vec![b'x'; 64 * 1024];
    let mut endless_line = vec![b"event: text_delta\ndata: ".to_vec()];
    endless_line.extend(std::iter::repeat_n(
        line.clone(),
        2 * MAX_EVENT_BYTES / line.len(),
    ));
    let mut many_lines = vec![b"event: text_delta\n".to_vec()];
    let mut data_line = b"data: ".to_vec();
    data_line.extend_from_slice(&line);
    data_line.extend_from_slice(b"\r\n");
    many_lines.extend(std::iter::repeat_n(
        data_line,
        2 * MAX_EVENT_BYTES / line.len(),
    ));
    for parts in [endless_line, many_lines] {
        let got = run(parts).await;
        assert_eq!(
            got.len(),
            1,
            "{:?}",
            got.iter().map(|r| r.is_ok()).collect::<Vec<_>>()
        );
        let err = got[0].as_ref().unwrap_err();
        assert!(err.contains("larger than 1048576 bytes"), "{err}");
    }
    // Many events that together pass the limit are fine: the cap is per event.
    let mut events = Vec::new();
    let mut delta = b"event: text_delta\ndata: {\"text\":\"".to_vec();
    delta.extend(std::iter::repeat_n(b'y', 60 * 1024));
    delta.extend_from_slice(b"\"}\n\n");
    events.extend(std::iter::repeat_n(
        delta,
        2 * MAX_EVENT_BYTES / (60 * 1024),
    ));
    events.push(b"event: reply\ndata: {\"text\":\"done\"}\n\n".to_vec());
    let got = run(events).await;
    assert!(got.iter().all(|r| r.is_ok()));
    assert!(matches!(got.last(), Some(Ok(ChatEvent::Reply(_)))));
}

#[tokio::test]
async fn every_two_way_split_gives_the_same_events() {
    let bytes = FULL.as_bytes();
    let want: Vec<_> = expected_full().into_iter().map(Ok).collect();
    for cut in 0..=bytes.len() {
        let got = run(vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()]).await;
        assert_eq!(got, want, "split at byte {cut}");
    }
}

#[tokio::test]
async fn byte_by_byte_and_crlf_framing_give_the_same_events() {
    let want: Vec<_> = expected_full().into_iter().map(Ok).collect();
    let singles = FULL.bytes().map(|b| vec![b]).collect();
    assert_eq!(run(singles).await, want);
    let crlf = FULL.replace('\n', "\r\n");
    let singles = crlf.bytes().map(|b| vec![b]).collect();
    assert_eq!(run(singles).await, want, "CRLF byte by byte");
    let cr = FULL.replace('\n', "\r");
    assert_eq!(run(vec![cr.into_bytes()]).await, want, "bare CR");
}

#[tokio::test]
async fn a_truncated_stream_always_ends_with_an_error_never_silently() {
    let bytes = FULL.as_bytes();
    let reply_start = FULL.find("event: reply").unwrap();
    let reply_json_end = FULL.rfind('}').unwrap() + 1;
    for cut in 0..bytes.len() {
        let got = run(vec![bytes[..cut].to_vec()]).await;
        let last = got
            .last()
            .expect("a truncated stream yields at least one item");
        if cut >= reply_json_end {
            // The reply's data is complete; only its blank line is missing: delivered.
            assert!(
                matches!(last, Ok(ChatEvent::Reply(_))),
                "cut at {cut}: {last:?}"
            );
        } else {
            let err = last.as_ref().expect_err("must end with an error");
            assert!(err.contains("cut after"), "cut at {cut}: {err}");
            assert!(
                got[..got.len() - 1].iter().all(Result::is_ok),
                "cut at {cut}"
            );
            if cut <= reply_start {
                assert!(!got.iter().any(|e| matches!(e, Ok(ChatEvent::Reply(_)))));
            }
        }
    }
}

#[tokio::test]
async fn an_error_event_ends_the_stream_with_its_message() {
    let body = "event: text_delta\ndata: {\"text\":\"Work\"}\n\n\
event: error\ndata: {\"message\":\"payment provider unavailable\"}\n\n\
event: reply\ndata: {\"text\":\"never\"}\n\n";
    let got = run(vec![body.as_bytes().to_vec()]).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        Ok(ChatEvent::TextDelta {
            text: "Work".into()
        })
    );
    let err = got[1].as_ref().unwrap_err();
    assert!(err.contains("payment provider unavailable"), "{err}");
    // Non-JSON error data is still surfaced.
    let got = run(vec![b"event: error\ndata: boom\n\n".to_vec()]).await;
    assert!(got[0].as_ref().unwrap_err().contains("boom"));
}

#[tokio::test]
async fn unknown_events_pass_through_and_multiline_data_joins() {
    let body = "event: thinking\ndata: {\"a\":1}\ndata: second line\n\n\
data: default-named\n\n\
event: reply\ndata: {\"text\":\"ok\",\"conversation_id\":\"c9\"}\n\n";
    let got = run(vec![body.as_bytes().to_vec()]).await;
    assert_eq!(
        got[0],
        Ok(ChatEvent::Unknown {
            event: "thinking".into(),
            data: "{\"a\":1}\nsecond line".into()
        })
    );
    assert_eq!(
        got[1],
        Ok(ChatEvent::Unknown {
            event: "message".into(),
            data: "default-named".into()
        })
    );
    let Ok(ChatEvent::Reply(reply)) = &got[2] else {
        panic!("{got:?}")
    };
    assert_eq!(reply.conversation_id.as_deref(), Some("c9"));
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn malformed_known_event_is_an_error_not_a_skip() {
    let body = "event: text_delta\ndata: {\"txt\":1}\n\nevent: reply\ndata: {\"text\":\"x\"}\n\n";
    let got = run(vec![body.as_bytes().to_vec()]).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].as_ref().unwrap_err().contains("`text_delta`"));
}

#[tokio::test]
async fn a_tool_failure_carries_its_reason() {
    let body = "event: tool_failed\ndata: {\"tool_name\":\"create_payment\",\"error\":\"over the spend limit\"}\n\n";
    let got = run(vec![body.as_bytes().to_vec()]).await;
    let Ok(ChatEvent::ToolFailed(tool)) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(tool.error.as_deref(), Some("over the spend limit"));
    assert!(got[1].is_err(), "no reply follows: cut");
}

#[tokio::test]
async fn a_transport_error_mid_stream_is_an_error() {
    let parts = vec![
        Ok(Bytes::from_static(
            b"event: text_delta\ndata: {\"text\":\"a\"}\n\n",
        )),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )),
    ];
    let got: Vec<_> = ChatStream::from_bytes(stream::iter(parts), None)
        .collect()
        .await;
    assert!(got[0].is_ok());
    let err = got[1].as_ref().unwrap_err();
    assert!(
        matches!(err, Error::Stream(StreamError::Transport(_))),
        "{err:?}"
    );
    assert_eq!(got.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_hits_the_read_idle_timeout() {
    // One event, then nothing ever again.
    let first = stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(
        b"event: text_delta\ndata: {\"text\":\"a\"}\n\n",
    ))]);
    let s = first.chain(stream::pending());
    let mut chat = ChatStream::from_bytes(s, Some(Duration::from_secs(30)));
    assert!(matches!(
        chat.next().await,
        Some(Ok(ChatEvent::TextDelta { .. }))
    ));
    let err = chat.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::Stream(StreamError::IdleTimeout { idle }) if idle == Duration::from_secs(30))
    );
    assert!(
        chat.next().await.is_none(),
        "the stream ends after its error"
    );
}

#[tokio::test(start_paused = true)]
async fn keep_alives_reset_the_idle_timer() {
    // A keep-alive every 20 s for 100 s, then the reply: a 30 s idle timeout never fires.
    let s = stream::unfold(0u32, |n| async move {
        if n < 5 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from_static(b": ping\n\n")),
                n + 1,
            ))
        } else if n == 5 {
            Some((
                Ok(Bytes::from_static(
                    b"event: reply\ndata: {\"text\":\"done\"}\n\n",
                )),
                n + 1,
            ))
        } else {
            None
        }
    });
    let reply = ChatStream::from_bytes(s, Some(Duration::from_secs(30)))
        .final_reply()
        .await
        .unwrap();
    assert_eq!(reply.text, "done");
}

#[tokio::test(start_paused = true)]
async fn keep_alives_forever_end_at_the_turn_deadline() {
    // A server that sends only `: keep-alive` forever: the idle timer never fires, the
    // total deadline does.
    let s = stream::unfold((), |()| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from_static(b": keep-alive\n\n")),
            (),
        ))
    });
    let mut chat = ChatStream::from_bytes(s, Some(Duration::from_secs(30)))
        .with_deadline(Duration::from_secs(300));
    let err = chat.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::Stream(StreamError::DeadlineExceeded { deadline }) if deadline == Duration::from_secs(300)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("check the payment intents"),
        "{err}"
    );
    assert!(
        chat.next().await.is_none(),
        "the stream ends after its error"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_before_the_deadline_is_delivered() {
    let mut chat = chunks(vec![FULL.as_bytes().to_vec()]).with_deadline(Duration::from_secs(1));
    let mut last = None;
    while let Some(item) = chat.next().await {
        last = Some(item.unwrap());
    }
    assert!(matches!(last, Some(ChatEvent::Reply(_))));
}

#[tokio::test]
async fn collect_reply_returns_the_final_reply_or_the_error() {
    let reply = chunks(vec![FULL.as_bytes().to_vec()])
        .final_reply()
        .await
        .unwrap();
    assert_eq!(reply.text, "Paid £25 to Bob.");
    assert_eq!(reply.tools, vec!["create_payment".to_string()]);
    let err = chunks(vec![FULL.as_bytes()[..40].to_vec()])
        .final_reply()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Stream(StreamError::Cut { .. })));
    let empty = chunks(vec![]).final_reply().await.unwrap_err();
    assert!(matches!(
        empty,
        Error::Stream(StreamError::Cut { events: 0 })
    ));
}

#[tokio::test]
async fn split_multibyte_characters_survive() {
    let body = "event: reply\ndata: {\"text\":\"£25 — paid ✓\"}\n\n"
        .as_bytes()
        .to_vec();
    for cut in 0..body.len() {
        let reply = chunks(vec![body[..cut].to_vec(), body[cut..].to_vec()])
            .final_reply()
            .await
            .unwrap();
        assert_eq!(reply.text, "£25 — paid ✓", "split at {cut}");
    }
}
