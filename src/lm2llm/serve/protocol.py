"""The OpenAI API's request bodies, as pydantic models: FastAPI validates with them and publishes them in
/openapi.json, so the schema a client (or a fuzzer) reads is the one the server enforces.

Every bound is explicit (string and list lengths, token counts, `n`), so one request cannot ask the server
for unbounded work. Unknown fields are refused rather than silently ignored: a client that sends
`tools` learns at once that this server does not do them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT = 100_000  # characters in one prompt or message (the body-size limit bounds the total)
MAX_PROMPTS = 16
MAX_MESSAGES = 256
MAX_CHOICES = 8
MAX_TOKENS = 1_000_000  # an upper bound for max_tokens; the model's context cuts generation earlier
MAX_STOP = 4  # as OpenAI

Text = Annotated[str, Field(max_length=MAX_TEXT)]
StopText = Annotated[str, Field(min_length=1, max_length=256)]
TokenId = Annotated[int, Field(ge=0, le=2**31 - 1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(Strict):
    include_usage: bool = Field(False, description="Send a last chunk with the token counts (and no choices).")


class SamplingFields(Strict):
    """What chat and completions requests share."""

    model: str = Field(..., max_length=256, description="The served model's id (GET /v1/models).")
    temperature: float = Field(1.0, ge=0, le=2, description="0 is greedy decoding.")
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=MAX_CHOICES, description="Choices to generate for each prompt.")
    stop: StopText | Annotated[list[StopText], Field(max_length=MAX_STOP)] | None = None
    seed: int | None = Field(None, ge=0, le=2**53 - 1,  # the largest integer every JSON client keeps exact
                             description="Same seed, same request: same text.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    top_k: int = Field(0, ge=0, le=MAX_TOKENS, description="Extension (as vLLM): keep the k most likely tokens; 0 = off.")
    user: str | None = Field(None, max_length=256, description="Accepted for compatibility; not used.")
    skip_special_tokens: bool = Field(True, description="Extension (as vLLM): leave special tokens such as "
                                      "<|end|> or <|im_end|> out of the text (they still count as tokens); "
                                      "false keeps them.")

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class CompletionRequest(SamplingFields):
    prompt: (Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_PROMPTS)]
             | Annotated[list[TokenId], Field(min_length=1, max_length=MAX_TEXT)]
             | Annotated[list[Annotated[list[TokenId], Field(min_length=1, max_length=MAX_TEXT)]],
                         Field(min_length=1, max_length=MAX_PROMPTS)])
    max_tokens: int = Field(16, ge=0, le=MAX_TOKENS, description="At most this many new tokens per choice.")
    echo: bool = Field(False, description="Put the prompt in front of each choice's text.")
    logprobs: int | None = Field(None, ge=0, le=5, description="Log-probabilities of each token and of the "
                                 "N most likely ones (with echo, of the prompt's tokens too); not when streaming.")


class TextPart(Strict):
    type: Literal["text"]
    text: Text


class ChatMessage(Strict):
    role: Literal["system", "user", "assistant"]
    content: Text | Annotated[list[TextPart], Field(max_length=64)]
    name: str | None = Field(None, max_length=64, description="Accepted for compatibility; not rendered.")

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class ChatRequest(SamplingFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS,
                                   description="At most this many new tokens (default: the rest of the context).")
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, description="The newer name of max_tokens.")

    def token_budget(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


# --- responses (documented in /openapi.json; the handlers build plain dicts of these shapes) -------------


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Choice(BaseModel):
    """What a completion choice and a chat choice share; each adds its text field."""

    index: int
    finish_reason: Literal["stop", "length"] | None
    logprobs: dict | None = None


class CompletionChoice(Choice):
    text: str


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(Choice):
    message: AssistantMessage


class Response(BaseModel):
    """The envelope both generation routes answer in; each narrows `object` and `choices`."""

    id: str
    object: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class CompletionResponse(Response):
    object: Literal["text_completion"]
    choices: list[CompletionChoice]


class ChatResponse(Response):
    object: Literal["chat.completion"]
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"]
    model: str
    live: int  # sequences decoding now
    waiting: int  # sequences queued for a free row
    steps: int  # decode steps so far
    mean_batch: float  # live rows per decode step, on average
