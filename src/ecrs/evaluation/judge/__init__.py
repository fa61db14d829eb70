"""LLM judge of recommender replies on ECR's subjective dimensions (ECR_SPEC §6), and its agreement with people.

    judge = Judge(make_backend(llm, default_gguf=qwen_gguf), cache="artifacts/judge/cache.sqlite")
    rows = judge.compare([PairItem(id, context, a, b), ...])   # {"verdict": {dim: "a" | "b" | "tie"}, ...}
    summary = summarize_compare(rows)                           # win / loss / tie of a per dimension

Each dimension is asked the way the local judge (Qwen2.5-Coder-1.5B) passed its known-answer controls
(`control_pairs`, `robotic_pairs`; benchmarks/judge.py, benchmarks/results/judge.json), one
dimension per question, the answer a bare word read with its first-token probabilities:

- emotional intensity (and any dimension without a yes/no question): both replies shown, "which is better on
  <dimension>? A, B or tie", asked in both orders (`Judge.pairwise`); the verdict is position-calibrated
  (`calibrate_orders`) when the backend gives probabilities, else a preference counts only when both orders agree;
- lifelikeness: each reply shown alone, "could a real movie fan have written this reply? yes or no"
  (`Judge.paired_yes_no`); the reply with the higher P(yes) wins.

Asked all five dimensions in one answer, the same judge failed those controls; experiments/judge-*/ keep the
investigations that led here. Read a dimension only once its controls pass.

Every request is greedy; an unparseable answer or a backend error is retried (`ecrs.inference.llm.Retry`) and,
after the last attempt, returned as a row with "failed" (never dropped). Parsed answers are cached in SQLite keyed by
sha256(model id, prompt version, messages, whether log-probabilities were asked for), so a rerun asks only what is
new. Agreement: `preference_kappa` (Cohen's kappa of two raters' a / b / tie outcomes); `export_form` /
`import_form` put the same pairs before people.

Modules: `prompts` (dimensions, items, controls, questions), `parsing` (answers, probabilities, the two orders),
`runner` (Judge, JudgeCache), `summary` (rates, kappa), `forms` (the human rating form).
"""
from ecrs.evaluation.judge.forms import FORM_VALUES, export_form, form_paths, import_form
from ecrs.evaluation.judge.parsing import (
    JudgeParseError,
    answer_probs,
    answer_text,
    calibrate_orders,
    combine_orders,
    first_token_probs,
    parse_choice,
    parse_yes_no,
    with_choice_probs,
)
from ecrs.evaluation.judge.prompts import (
    CHOICE_SCHEMA,
    CONTROL_ENTHUSIASM,
    CONTROL_ROBOTIC,
    DEFAULT_DIMENSIONS,
    DIMENSION_DEFINITIONS,
    DIMENSIONS,
    FACT_DIMENSIONS,
    FAULT_CONTROLS,
    JUDGE_PROMPT_VERSION,
    PREFERENCES,
    SINGLE_PROMPT_VERSION,
    YES_NO_QUESTIONS,
    YES_NO_SCHEMA,
    YES_NO_VERSION,
    PairItem,
    control_pairs,
    design,
    fault_controls,
    render_context,
    robotic_pairs,
    single_question_messages,
    yes_no_messages,
)
from ecrs.evaluation.judge.runner import Judge, JudgeCache, fact_faults
from ecrs.evaluation.judge.summary import (
    preference_kappa,
    summarize_calibrated,
    summarize_compare,
    summarize_pairwise,
    summarize_yes_no,
)

__all__ = [
    "FACT_DIMENSIONS",
    "fact_faults",
    "CHOICE_SCHEMA",
    "CONTROL_ENTHUSIASM",
    "CONTROL_ROBOTIC",
    "FAULT_CONTROLS",
    "DEFAULT_DIMENSIONS",
    "DIMENSIONS",
    "DIMENSION_DEFINITIONS",
    "FORM_VALUES",
    "JUDGE_PROMPT_VERSION",
    "PREFERENCES",
    "SINGLE_PROMPT_VERSION",
    "YES_NO_QUESTIONS",
    "YES_NO_SCHEMA",
    "YES_NO_VERSION",
    "Judge",
    "JudgeCache",
    "JudgeParseError",
    "PairItem",
    "answer_probs",
    "answer_text",
    "calibrate_orders",
    "combine_orders",
    "control_pairs",
    "fault_controls",
    "design",
    "export_form",
    "first_token_probs",
    "form_paths",
    "import_form",
    "parse_choice",
    "parse_yes_no",
    "preference_kappa",
    "render_context",
    "robotic_pairs",
    "single_question_messages",
    "summarize_calibrated",
    "summarize_compare",
    "summarize_pairwise",
    "summarize_yes_no",
    "with_choice_probs",
    "yes_no_messages",
]
