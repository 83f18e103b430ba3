"""The OpenAI Chat Completions shapes we accept and return, strictly: an unknown field, a wrong
type or an out-of-range number is a 422 naming the field, before anything reaches Kafka.

Extensions from the docs pack: ``mode`` and ``budget`` in; ``output_text``, ``citations``,
``trace_id`` and ``correlation_id`` out."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "AssistantInput",
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "Choice",
    "RequestBudget",
    "ToolCall",
    "ToolMessage",
    "Usage",
]

_Text = Annotated[str, Field(max_length=1_000_000)]
_Name = Annotated[str, Field(min_length=1, max_length=128)]
_Stop = Annotated[str, Field(max_length=256)]


def _integral(value: object) -> object:
    """JSON Schema counts 5.0 as an integer; strict ints would not. Strings stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_Count = Annotated[int, BeforeValidator(_integral), Field(ge=1, le=2**31 - 1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: _Text


class FunctionCall(_Strict):
    name: _Name
    arguments: _Text


class ToolCall(_Strict):
    id: _Name
    type: Literal["function"] = "function"
    function: FunctionCall


class _Message(_Strict):
    """What every role shares; each role's model says which fields it requires, so the
    OpenAPI document (and any generated client) knows as well as the validator does."""

    content: _Text | list[TextPart] | None = None
    name: _Name | None = None

    def text(self) -> str | None:
        """Text parts are joined; other part types are rejected by validation."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content


class SystemMessage(_Message):
    role: Literal["system"]
    content: _Text | list[TextPart]


class DeveloperMessage(_Message):
    role: Literal["developer"]
    content: _Text | list[TextPart]


class UserMessage(_Message):
    role: Literal["user"]
    content: _Text | list[TextPart]


class AssistantInput(_Message):
    """An earlier answer in the conversation: text, tool calls, or both."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
                {"required": ["tool_calls"], "properties": {"tool_calls": {"minItems": 1}}},
            ]
        }
    )

    role: Literal["assistant"]
    tool_calls: list[ToolCall] | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _says_something(self) -> AssistantInput:
        if self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        return self


class ToolMessage(_Message):
    role: Literal["tool"]
    content: _Text | list[TextPart]
    tool_call_id: _Name


ChatMessage = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantInput | ToolMessage,
    Field(discriminator="role"),
]


class FunctionDefinition(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: _Text | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Strict):
    name: _Name


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: _Text | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextFormat(_Strict):
    type: Literal["text"]


class JsonObjectFormat(_Strict):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaResponseFormat, Field(discriminator="type")
]


class StreamOptions(_Strict):
    include_usage: bool = False


class RequestBudget(_Strict):
    max_tokens: _Count | None = None
    max_cost_usd: float | None = Field(None, gt=0, allow_inf_nan=False)


class RagOptions(_Strict):
    """Where ``mode: rag`` looks (an extension of OpenAI's request)."""

    collection: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
    top_k: int = Field(5, ge=1, le=50)  # sources offered to the model
    retrieval_mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    filters: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] = (
        Field(default_factory=dict, max_length=16)
    )


class ChatCompletionRequest(_Strict):
    """``model`` is a hint: the platform's router picks the model that answers."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=2048)
    model: _Name | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None
    stop: _Stop | Annotated[list[_Stop], Field(max_length=4)] | None = None
    max_tokens: _Count | None = None
    max_completion_tokens: _Count | None = None
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    n: Literal[1] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    metadata: (
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None
    ) = Field(None, max_length=16)
    mode: Literal["direct", "workflow", "rag"] = "direct"
    budget: RequestBudget | None = None
    rag: RagOptions | None = None

    @model_validator(mode="after")
    def _rag_options_with_rag_mode(self) -> Self:
        if (self.mode == "rag") != (self.rag is not None):
            raise ValueError("mode rag needs rag.collection, and rag options need mode rag")
        if self.rag is not None and self.stream:
            raise ValueError("mode rag answers once its citations are checked: stream is false")
        return self

    def completion_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Grounding(BaseModel):
    """How well a mode rag answer is supported by the sources it cites."""

    score: float
    unsupported_sentences: int
    degraded: bool  # retrieval fell back to keywords
    retrieval_mode: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    output_text: str | None
    citations: list[dict[str, Any]]
    grounding: Grounding | None = None
    trace_id: str | None
    correlation_id: str
