//! List prices: what a session's usage costs at public list rates (semantics §12.3). This is
//! the basis of `usage.list_cost` and of budget enforcement (§6.7).
//!
//! Amounts are integer pico-dollars (10⁻¹² USD). Every list rate, prompt-caching multipliers
//! included, is a whole number of them per token, so sums are exact; only the reported figure
//! is rounded (to cents). Enforcement compares the exact value with the cap.
//!
//! The table is operator-wide: built-in public rates, overridden or extended by the operator's
//! `[pricing]` (installed once at startup, see [`install`]). A model the table does not price
//! has no list cost, and a budget cannot be set on a session that can run it.

use std::sync::OnceLock;

use serde_json::Value;

/// Pico-dollars in one cent.
pub const PICO_PER_CENT: u128 = 10_000_000_000;
/// Pico-dollars per token for a rate of one dollar per million tokens.
const PICO_PER_TOKEN_PER_USD_MTOK: f64 = 1_000_000.0;
const MS_PER_HOUR: u128 = 3_600_000;

/// One model's rates, in pico-dollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelRates {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
}

impl ModelRates {
    /// Rates from dollars per million input and output tokens, with the Messages API's
    /// prompt-caching multipliers: writes 1.25× (5-minute TTL) and 2× (1-hour), reads 0.1×.
    pub fn per_mtok(input_usd: f64, output_usd: f64) -> Self {
        let input = usd_per_mtok(input_usd);
        ModelRates {
            input,
            output: usd_per_mtok(output_usd),
            cache_write_5m: input + input / 4,
            cache_write_1h: input * 2,
            cache_read: input / 10,
        }
    }
}

/// Dollars per million tokens as pico-dollars per token (negative or non-finite rates are 0).
pub fn usd_per_mtok(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * PICO_PER_TOKEN_PER_USD_MTOK).round() as u64
    } else {
        0
    }
}

/// Dollars as pico-dollars.
pub fn usd(amount: f64) -> u64 {
    if amount.is_finite() && amount > 0.0 {
        (amount * 1e12).round() as u64
    } else {
        0
    }
}

/// How a table entry names models: one id exactly, or every id that starts with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    Exact(String),
    Prefix(String),
}

impl ModelPattern {
    /// `name*` is a prefix, anything else one id.
    pub fn parse(s: &str) -> Self {
        match s.strip_suffix('*') {
            Some(p) => ModelPattern::Prefix(p.to_string()),
            None => ModelPattern::Exact(s.to_string()),
        }
    }

    /// How specific a match is (longer wins; an exact id beats every prefix), or `None`.
    fn matches(&self, model: &str) -> Option<usize> {
        match self {
            ModelPattern::Exact(id) => (id == model).then_some(usize::MAX),
            ModelPattern::Prefix(p) => model.starts_with(p.as_str()).then_some(p.len()),
        }
    }
}

/// What a session (or thread) used, in the units prices apply to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metered {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub web_search_requests: u64,
}

impl Metered {
    /// Reads the API's usage object (`BetaManagedAgentsSessionUsage`); absent fields are 0.
    pub fn from_usage(u: &Value) -> Self {
        let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        Metered {
            input_tokens: n("/input_tokens"),
            output_tokens: n("/output_tokens"),
            cache_read_input_tokens: n("/cache_read_input_tokens"),
            cache_write_5m_tokens: n("/cache_creation/ephemeral_5m_input_tokens"),
            cache_write_1h_tokens: n("/cache_creation/ephemeral_1h_input_tokens"),
            web_search_requests: n("/server_tool_use/web_search_requests"),
        }
    }
}

/// Public list rates, plus the operator's own.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    /// Built-in entries first; an operator's entry for the same pattern replaces its rates.
    models: Vec<(ModelPattern, ModelRates)>,
    /// Pico-dollars per hour while a session is running.
    pub runtime_per_hour: u64,
    /// Pico-dollars per web search.
    pub web_search: u64,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PriceTable {
    /// Anthropic's public list rates (dollars per million input/output tokens), session
    /// runtime at $0.08 per session-hour and web search at $10 per 1,000 searches.
    pub fn builtin() -> Self {
        let p = |s: &str| ModelPattern::Prefix(s.to_string());
        let rates = ModelRates::per_mtok;
        PriceTable {
            models: vec![
                // Opus 4.5 and later; Opus 4 and 4.1 kept the earlier rate (below, longer).
                (p("claude-opus-4"), rates(5.0, 25.0)),
                (p("claude-opus-4-0"), rates(15.0, 75.0)),
                (p("claude-opus-4-1"), rates(15.0, 75.0)),
                (p("claude-opus-4-2025"), rates(15.0, 75.0)),
                (p("claude-3-opus"), rates(15.0, 75.0)),
                (p("claude-sonnet-4"), rates(3.0, 15.0)),
                (p("claude-3-7-sonnet"), rates(3.0, 15.0)),
                (p("claude-3-5-sonnet"), rates(3.0, 15.0)),
                (p("claude-haiku-4"), rates(1.0, 5.0)),
                (p("claude-3-5-haiku"), rates(0.8, 4.0)),
                (p("claude-3-haiku"), rates(0.25, 1.25)),
            ],
            runtime_per_hour: usd(0.08),
            web_search: usd(0.01),
        }
    }

    /// Adds or replaces the rates of `pattern`.
    pub fn set_model(&mut self, pattern: ModelPattern, rates: ModelRates) {
        match self.models.iter_mut().find(|(p, _)| *p == pattern) {
            Some(entry) => entry.1 = rates,
            None => self.models.push((pattern, rates)),
        }
    }

    /// The rates of `model`: the most specific entry that names it.
    pub fn rates(&self, model: &str) -> Option<ModelRates> {
        self.models
            .iter()
            .filter_map(|(p, r)| p.matches(model).map(|score| (score, r)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, r)| *r)
    }

    pub fn is_list_priced(&self, model: &str) -> bool {
        self.rates(model).is_some()
    }

    /// What `m` costs on `model`; `None` when the model has no list price.
    pub fn usage_cost(&self, model: &str, m: &Metered) -> Option<u128> {
        let r = self.rates(model)?;
        let t = |n: u64, rate: u64| u128::from(n) * u128::from(rate);
        Some(
            t(m.input_tokens, r.input)
                + t(m.output_tokens, r.output)
                + t(m.cache_read_input_tokens, r.cache_read)
                + t(m.cache_write_5m_tokens, r.cache_write_5m)
                + t(m.cache_write_1h_tokens, r.cache_write_1h)
                + t(m.web_search_requests, self.web_search),
        )
    }

    /// Session runtime for `active_seconds` of running, measured to the millisecond.
    pub fn runtime_cost(&self, active_seconds: f64) -> u128 {
        let ms = if active_seconds.is_finite() && active_seconds > 0.0 {
            (active_seconds * 1000.0).round() as u128
        } else {
            0
        };
        ms * u128::from(self.runtime_per_hour) / MS_PER_HOUR
    }

    /// A session's list cost: its usage on its model plus its runtime.
    pub fn session_cost(&self, model: &str, usage: &Value) -> Option<u128> {
        let active = usage
            .get("active_seconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        Some(self.usage_cost(model, &Metered::from_usage(usage))? + self.runtime_cost(active))
    }
}

/// Pico-dollars rounded to the nearest cent (halves up), as the API reports amounts.
pub fn cents(pico: u128) -> u128 {
    (pico + PICO_PER_CENT / 2) / PICO_PER_CENT
}

/// A cap in cents as pico-dollars.
pub fn cap_pico(cents: u64) -> u128 {
    u128::from(cents) * PICO_PER_CENT
}

static TABLE: OnceLock<PriceTable> = OnceLock::new();

/// Installs the operator's table for this process. Set once at startup, before any request
/// is served; a second call is refused (the table in use stays).
pub fn install(table: PriceTable) -> Result<(), PriceTable> {
    TABLE.set(table)
}

/// The table in use: the installed one, else the built-in rates.
pub fn table() -> &'static PriceTable {
    TABLE.get_or_init(PriceTable::builtin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_most_specific_entry_prices_a_model() {
        let t = PriceTable::builtin();
        assert_eq!(t.rates("claude-opus-4-8").unwrap().input, 5_000_000);
        assert_eq!(
            t.rates("claude-opus-4-5-20251101").unwrap().output,
            25_000_000
        );
        assert_eq!(
            t.rates("claude-opus-4-1-20250805").unwrap().input,
            15_000_000
        );
        assert_eq!(t.rates("claude-opus-4-20250514").unwrap().input, 15_000_000);
        assert_eq!(t.rates("claude-sonnet-4-5").unwrap().input, 3_000_000);
        assert_eq!(t.rates("claude-haiku-4-5").unwrap().output, 5_000_000);
        assert_eq!(t.rates("claude-3-haiku-20240307").unwrap().input, 250_000);
        assert!(t.rates("gpt-local-7b").is_none());
        assert!(!t.is_list_priced("claude-unknown-family"));
    }

    #[test]
    fn caching_multipliers_are_exact() {
        let r = ModelRates::per_mtok(0.25, 1.25);
        assert_eq!(
            (r.cache_write_5m, r.cache_write_1h, r.cache_read),
            (312_500, 500_000, 25_000)
        );
        let r = ModelRates::per_mtok(0.8, 4.0);
        assert_eq!(
            (r.input, r.cache_write_5m, r.cache_read),
            (800_000, 1_000_000, 80_000)
        );
    }

    #[test]
    fn an_operator_entry_replaces_or_adds() {
        let mut t = PriceTable::builtin();
        t.set_model(
            ModelPattern::parse("claude-opus-4*"),
            ModelRates::per_mtok(1.0, 2.0),
        );
        t.set_model(
            ModelPattern::parse("gpt-local-7b"),
            ModelRates::per_mtok(0.1, 0.2),
        );
        assert_eq!(t.rates("claude-opus-4-8").unwrap().input, 1_000_000);
        // The longer built-in prefix still wins for Opus 4.1.
        assert_eq!(t.rates("claude-opus-4-1").unwrap().input, 15_000_000);
        assert_eq!(t.rates("gpt-local-7b").unwrap().output, 200_000);
        assert!(t.rates("gpt-local-7b-instruct").is_none());
    }

    #[test]
    fn session_cost_adds_tokens_searches_and_runtime() {
        let t = PriceTable::builtin();
        let usage = json!({
            "input_tokens": 20_000, "output_tokens": 400, "cache_read_input_tokens": 10_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 0},
            "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
            "active_seconds": 3600.0,
        });
        // Opus 4.8: 10¢ input + 1¢ output + 0.5¢ cache reads + 0.625¢ writes + 2¢ search + 8¢.
        let pico = t.session_cost("claude-opus-4-8", &usage).unwrap();
        assert_eq!(pico, 22_125 * PICO_PER_CENT / 1000);
        assert_eq!(cents(pico), 22);
        assert!(t.session_cost("gpt-local-7b", &usage).is_none());
    }

    #[test]
    fn rounding_is_to_the_nearest_cent() {
        assert_eq!(cents(PICO_PER_CENT / 2 - 1), 0);
        assert_eq!(cents(PICO_PER_CENT / 2), 1);
        assert_eq!(cents(0), 0);
        assert_eq!(PriceTable::builtin().runtime_cost(0.045), 1_000_000);
    }
}
