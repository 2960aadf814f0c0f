from __future__ import annotations

import pytest

from tokenmill.engine.chat_template import ChatTemplate
from tokenmill.engine.runner import LlamaRunner
from tokenmill.errors import InvalidRequest

CHATML = (
    "{{ bos_token }}{% for m in messages %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_renders_messages_with_the_generation_prompt() -> None:
    template = ChatTemplate(CHATML, bos_token="<s>", eos_token="</s>")
    text = template.render([{"role": "user", "content": "Hi"}])
    assert text == "<s><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_text_parts_are_joined() -> None:
    template = ChatTemplate(CHATML)
    content = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "there"}]
    assert "Hello, there" in template.render([{"role": "user", "content": content}])


def test_raise_exception_refuses_the_request() -> None:
    source = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}"
    with pytest.raises(InvalidRequest) as caught:
        ChatTemplate(source).render([{"role": "assistant", "content": "x"}])
    assert caught.value.param == "messages"
    assert "user first" in caught.value.message


def test_the_sandbox_blocks_python_internals() -> None:
    template = ChatTemplate("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(InvalidRequest):
        template.render([{"role": "user", "content": "x"}])


def test_the_sandbox_blocks_mutation() -> None:
    template = ChatTemplate("{{ messages.append(1) }}")
    with pytest.raises(InvalidRequest):
        template.render([{"role": "user", "content": "x"}])


def test_tojson_keeps_unicode() -> None:
    template = ChatTemplate("{{ messages[0]['content'] | tojson }}")
    assert template.render([{"role": "user", "content": "é"}]) == '"é"'


def test_a_template_that_does_not_parse_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="does not parse"):
        ChatTemplate("{% for %}")


@pytest.mark.model
def test_the_bundled_models_template_from_gguf_metadata(runner: LlamaRunner) -> None:
    source = runner.chat_template
    assert source is not None
    template = ChatTemplate(source, bos_token=runner.bos_token, eos_token=runner.eos_token)
    text = template.render([{"role": "user", "content": "Hi"}])
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
