//! HTML built so that nothing a client sent can become markup: markup is `'static` text written
//! in this crate, every other string is escaped on the way in.

/// A document fragment under construction.
#[derive(Default)]
pub(crate) struct Html(String);

impl Html {
    /// Markup written by this crate. Only `'static` strings: a payee name or a summary cannot
    /// reach here by mistake.
    pub(crate) fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Text, or the value of a double-quoted attribute: escaped.
    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        escape_into(&mut self.0, text);
        self
    }

    /// A fragment built separately (already safe).
    pub(crate) fn fragment(&mut self, other: Html) -> &mut Self {
        self.0.push_str(&other.0);
        self
    }

    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

/// Escapes the characters that end text or a quoted attribute, or start a tag or an entity.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Html;

    #[test]
    fn text_is_escaped_and_raw_markup_is_not() {
        let mut h = Html::default();
        h.raw("<td title=\"")
            .text("\"><script>alert('x')</script>&")
            .raw("\">")
            .text("<img src=x onerror=alert(1)>")
            .raw("</td>");
        assert_eq!(
            h.into_string(),
            "<td title=\"&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\">\
             &lt;img src=x onerror=alert(1)&gt;</td>"
        );
    }
}
