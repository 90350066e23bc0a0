//! `file_id` image and document blocks of user messages, sent to the model as what they are.
//!
//! The projection keeps a `{"type": "file", "file_id"}` source as it was sent; before a request
//! leaves, each such block gets the file's bytes from the Files API store: images as base64
//! (JPEG, PNG, GIF, WebP), PDFs as base64 documents, text files as text documents. A file the
//! model cannot be given (missing, expired, too large, another type) becomes a text block that
//! says why, so the model knows it was there. Results are kept for the host's lifetime: a file's
//! bytes never change under its id.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Value, json};

use oma_model::types::{Block, Message};

use super::SessionHost;

/// Anthropic's limit for one image (5 MB), and a document's share of the 32 MB request.
const MAX_IMAGE_BYTES: i64 = 5 * 1024 * 1024;
const MAX_DOCUMENT_BYTES: i64 = 24 * 1024 * 1024;

const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The blocks made of each file, by id (what [`SessionHost::attach_files`] resolved).
#[derive(Default)]
pub(super) struct Attachments {
    resolved: HashMap<(String, bool), Block>,
}

impl SessionHost {
    /// Replaces every `file` source in `messages` with the file's content (or a note why not).
    pub(super) async fn attach_files(&mut self, messages: &mut [Message]) {
        for message in messages.iter_mut() {
            for block in message.content.iter_mut() {
                let (file_id, image) = match block {
                    Block::Image { source } => match file_source(source) {
                        Some(id) => (id, true),
                        None => continue,
                    },
                    Block::Document { source, .. } => match file_source(source) {
                        Some(id) => (id, false),
                        None => continue,
                    },
                    _ => continue,
                };
                let key = (file_id.clone(), image);
                let resolved = match self.attachments.resolved.get(&key) {
                    Some(b) => b.clone(),
                    None => {
                        let b = self.load_attachment(&file_id, image).await;
                        self.attachments.resolved.insert(key, b.clone());
                        b
                    }
                };
                *block = match (resolved, &*block) {
                    // The sender's title and context stay on the document.
                    (
                        Block::Document { source, title, .. },
                        Block::Document {
                            title: given,
                            context,
                            ..
                        },
                    ) => Block::Document {
                        source,
                        title: given.clone().or(title),
                        context: context.clone(),
                    },
                    (b, _) => b,
                };
            }
        }
    }

    async fn load_attachment(&self, file_id: &str, image: bool) -> Block {
        let what = if image { "image" } else { "document" };
        let unavailable = |why: String| Block::Text {
            text: format!("[{what}: file {file_id} could not be attached: {why}]"),
            cache: false,
        };
        let rec = match self.store.file_record(&self.tenant, file_id).await {
            Ok(r) => r,
            Err(e) => return unavailable(e.to_string()),
        };
        if rec.is_expired(oma_core::time::now_micros()) {
            return unavailable("the file has expired".into());
        }
        let mime = rec.meta.mime_type.to_ascii_lowercase();
        let mime = mime
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let size = rec.meta.size_bytes;
        let kind = if image {
            if !IMAGE_TYPES.contains(&mime.as_str()) {
                return unavailable(format!(
                    "it is {mime}; images must be JPEG, PNG, GIF or WebP"
                ));
            }
            Kind::Image
        } else if mime == "application/pdf" {
            Kind::Pdf
        } else if is_text(&mime) {
            Kind::Text
        } else {
            return unavailable(format!("it is {mime}; documents must be PDF or text"));
        };
        let max = if image {
            MAX_IMAGE_BYTES
        } else {
            MAX_DOCUMENT_BYTES
        };
        if size > max {
            return unavailable(format!(
                "it has {size} bytes, more than the {max} a model request may carry"
            ));
        }
        let Some(blobs) = self.store.blobs() else {
            return unavailable("the server has no blob storage attached".into());
        };
        let bytes = match blobs.get(&rec.blob_key).await {
            Ok(b) => b,
            Err(e) => return unavailable(e.to_string()),
        };
        let b64 = || base64::engine::general_purpose::STANDARD.encode(&bytes);
        match kind {
            Kind::Image => Block::Image {
                source: json!({"type": "base64", "media_type": mime, "data": b64()}),
            },
            Kind::Pdf => Block::Document {
                source: json!({"type": "base64", "media_type": "application/pdf", "data": b64()}),
                title: Some(rec.meta.filename.clone()),
                context: None,
            },
            Kind::Text => match String::from_utf8(bytes.to_vec()) {
                Ok(text) => Block::Document {
                    source: json!({"type": "text", "media_type": "text/plain", "data": text}),
                    title: Some(rec.meta.filename.clone()),
                    context: None,
                },
                Err(_) => unavailable("it is not valid UTF-8 text".into()),
            },
        }
    }
}

enum Kind {
    Image,
    Pdf,
    Text,
}

fn file_source(source: &Value) -> Option<String> {
    (source.get("type").and_then(Value::as_str) == Some("file"))
        .then(|| source.get("file_id").and_then(Value::as_str))
        .flatten()
        .map(str::to_string)
}

/// Types whose content is text the model can read as a plain-text document.
fn is_text(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/json"
                | "application/xml"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
                | "application/javascript"
                | "application/x-sh"
        )
}
