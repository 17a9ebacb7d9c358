"""Special tokens and the chat format every later stage (SFT, RLHF, serving) relies on.

A conversation renders as `<|system|>…<|end|><|user|>…<|end|><|assistant|>…<|end|>`: a role token,
the message text, and the end-of-turn token `<|end|>`, with no added whitespace. Generation stops at
`<|end|>`; documents in pre-training data are separated by `<|endoftext|>`; batches are padded with
`<|pad|>`, which is never a training target. For SFT only the assistant's text and its closing `<|end|>`
are targets (the assistant mask), so the model learns to answer and to stop.

The same format is written as a Jinja template into `tokenizer_config.json`, with `{% generation %}`
around the assistant part, so `transformers`' `apply_chat_template` renders the same ids and mask.
"""

from __future__ import annotations

ENDOFTEXT = "<|endoftext|>"
PAD = "<|pad|>"
SYSTEM = "<|system|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
END_OF_TURN = "<|end|>"

# Order fixes the ids: <|endoftext|>=0, <|pad|>=1, <|system|>=2, <|user|>=3, <|assistant|>=4, <|end|>=5.
SPECIAL_TOKENS = [ENDOFTEXT, PAD, SYSTEM, USER, ASSISTANT, END_OF_TURN]
ROLE_TOKENS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}

# BERT's extra special tokens, after the six above (`lm2llm tokenizer train --encoder-tokens`): masked-LM
# training hides tokens behind <|mask|>; <|cls|> starts a text given to BERT and its position is pooled.
MASK_TOKEN = "<|mask|>"
CLS_TOKEN = "<|cls|>"
ENCODER_TOKENS = (MASK_TOKEN, CLS_TOKEN)

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{%- elif message['role'] == 'system' or message['role'] == 'user' -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{%- else -%}"
    "{{ raise_exception('unknown role: ' ~ message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)
