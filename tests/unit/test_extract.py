"""Code extraction from model answers: fences, reasoning, several blocks, errors written to the model."""

from __future__ import annotations

import pytest

from agents.extract import ExtractionError, extract_code, top_level_names
from reference_sim.errors import SimCoderError

MODULE = "import math\n\n\ndef map_layer(layer, hardware):\n    return math.ceil(layer / hardware)\n"


def test_python_fence_with_reasoning_around_it() -> None:
    answer = f"Let me think about the mapping first.\nThe tiles are ...\n\n```python\n{MODULE}```\n\nThat's it."
    assert extract_code(answer, required=["map_layer"]) == MODULE


@pytest.mark.parametrize("tag", ["python", "py", "Python", "python3", "", "python filename=mapping.py", "{.python}"])
def test_fence_tags(tag: str) -> None:
    assert extract_code(f"```{tag}\n{MODULE}```", required=["map_layer"]) == MODULE


def test_tilde_fence_and_longer_fence_holding_backticks() -> None:
    assert extract_code(f"~~~python\n{MODULE}~~~\n", required=["map_layer"]) == MODULE
    inner = 'DOC = """\n```\nexample\n```\n"""\n' + MODULE
    assert extract_code(f"````python\n{inner}````", required=["map_layer", "DOC"]) == inner


def test_crlf_answer() -> None:
    answer = f"Here:\r\n```python\r\n{MODULE.replace(chr(10), chr(13) + chr(10))}```\r\n"
    code = extract_code(answer, required=["map_layer"])
    assert code == MODULE
    assert "\r" not in code


def test_think_block_is_ignored() -> None:
    draft = "```python\ndef map_layer(layer, hardware):\n    return 0  # draft\n```"
    answer = f"<think>\nI could write\n{draft}\nbut no.\n</think>\n```python\n{MODULE}```"
    assert extract_code(answer, required=["map_layer"]) == MODULE


def test_think_block_after_the_code_is_ignored() -> None:
    answer = f"```python\n{MODULE}```\n<think>\nDid I get it right? Yes.\n</think>\nDone."
    assert extract_code(answer, required=["map_layer"]) == MODULE


def test_think_without_opening_tag_and_unclosed_think() -> None:
    answer = f"reasoning the server left without its tag ```python\nx = 1\n```\n</think>\n```python\n{MODULE}```"
    assert extract_code(answer, required=["map_layer"]) == MODULE
    with pytest.raises(ExtractionError, match="No Python code block"):
        extract_code(f"<think>\nstill thinking\n```python\n{MODULE}```", required=["map_layer"])


def test_other_language_blocks_are_skipped() -> None:
    answer = f"Install:\n```bash\npip install numpy\n```\n```python\n{MODULE}```\n```text\noutput\n```"
    assert extract_code(answer, required=["map_layer"]) == MODULE


def test_last_block_that_defines_everything_wins() -> None:
    first = "def map_layer(layer, hardware):\n    return 0\n"
    answer = f"Draft:\n```python\n{first}```\nBetter:\n```python\n{MODULE}```"
    assert extract_code(answer, required=["map_layer"]) == MODULE


def test_def_only_in_an_earlier_block_usage_example_after() -> None:
    example = "result = map_layer(conv1, hw)\nprint(result)\n"
    answer = f"```python\n{MODULE}```\nUse it like this:\n```python\n{example}```"
    assert extract_code(answer, required=["map_layer"]) == MODULE


def test_blocks_joined_when_together_they_define_the_names() -> None:
    one = "from .contract import Layer\n\n\ndef map_layer(layer, hardware):\n    return 1\n"
    two = "def schedule(mapping, hardware):\n    return 2\n"
    code = extract_code(f"```python\n{one}```\nand\n```python\n{two}```", required=["map_layer", "schedule"])
    assert code == one + "\n\n" + two
    assert top_level_names(code) >= {"map_layer", "schedule"}


def test_helper_in_an_earlier_block_is_kept() -> None:
    helper = "def _ceil_div(a, b):\n    return -(-a // b)\n"
    main = "def map_layer(layer, hardware):\n    return _ceil_div(layer, hardware)\n"
    code = extract_code(f"A helper:\n```python\n{helper}```\nThen:\n```python\n{main}```", required=["map_layer"])
    assert code == helper + "\n\n" + main


def test_a_block_that_is_prose_is_ignored() -> None:
    prose = "This module maps each layer onto the array, then tiles the rest.\n"
    assert extract_code(f"```\n{prose}```\n```python\n{MODULE}```", required=["map_layer"]) == MODULE
    assert extract_code(f"```python\n{MODULE}```\n```\n{prose}```", required=["map_layer"]) == MODULE


def test_only_prose_blocks() -> None:
    with pytest.raises(ExtractionError, match="No Python code block found"):
        extract_code("```\nI cannot do that, the layer is too large.\n```", required=["map_layer"])


def test_unfenced_code_is_accepted_when_it_parses_and_defines_the_names() -> None:
    assert extract_code(MODULE, required=["map_layer"]) == MODULE
    assert extract_code("\n\n" + MODULE + "\n\n", required=["map_layer"]) == MODULE


def test_no_code_at_all() -> None:
    with pytest.raises(ExtractionError, match="No Python code block found") as caught:
        extract_code("Sure! I will write the mapping module next.", required=["map_layer"])
    assert "```python" in str(caught.value)
    assert isinstance(caught.value, SimCoderError)
    with pytest.raises(ExtractionError, match="No Python code block found"):
        extract_code("", required=["map_layer"])
    with pytest.raises(ExtractionError, match="other languages"):
        extract_code("```bash\nls\n```", required=["map_layer"])


def test_missing_name_is_named() -> None:
    answer = "```python\ndef mapping(layer, hardware):\n    return 1\n```"
    with pytest.raises(ExtractionError) as caught:
        extract_code(answer, required=["map_layer"])
    message = str(caught.value)
    assert "`map_layer`" in message and "mapping" in message
    assert caught.value.missing == ("map_layer",)


def test_missing_names_over_several_blocks() -> None:
    answer = "```python\ndef a():\n    pass\n```\n```python\ndef b():\n    pass\n```"
    with pytest.raises(ExtractionError) as caught:
        extract_code(answer, required=["a", "b", "c", "d"])
    assert caught.value.missing == ("c", "d")
    assert "`c`, `d`" in str(caught.value)


def test_name_defined_only_inside_a_function_does_not_count() -> None:
    answer = "```python\ndef outer():\n    def map_layer():\n        pass\n```"
    with pytest.raises(ExtractionError, match="`map_layer`"):
        extract_code(answer, required=["map_layer"])


def test_unfenced_code_missing_a_name() -> None:
    with pytest.raises(ExtractionError, match="`schedule`"):
        extract_code(MODULE, required=["map_layer", "schedule"])


def test_syntax_error_names_line_and_message() -> None:
    broken = "import math\n\ndef map_layer(layer, hardware)\n    return 1\n"
    with pytest.raises(ExtractionError) as caught:
        extract_code(f"```python\n{broken}```", required=["map_layer"])
    message = str(caught.value)
    assert "line 3" in message and "expected ':'" in message
    assert "def map_layer(layer, hardware)" in message
    assert caught.value.missing == ()


def test_syntax_error_in_one_of_several_blocks() -> None:
    broken = "def map_layer(layer, hardware):\n    return (1\n"
    answer = f"```python\nX = 1\n```\n```python\n{broken}```"
    with pytest.raises(ExtractionError, match=r"code block 2 .*line 2"):
        extract_code(answer, required=["map_layer"])


def test_unfenced_code_with_a_syntax_error() -> None:
    with pytest.raises(ExtractionError, match="line 2"):
        extract_code("import math\ndef map_layer(:\n    return 1\n", required=["map_layer"])


def test_truncated_answer_without_closing_fence() -> None:
    assert extract_code(f"```python\n{MODULE}", required=["map_layer"]) == MODULE
    with pytest.raises(ExtractionError, match="does not parse"):
        extract_code("```python\ndef map_layer(layer, hardware):\n    return max(1,", required=["map_layer"])


def test_indented_fence_is_dedented() -> None:
    indented = "".join("   " + line if line.strip() else line for line in MODULE.splitlines(keepends=True))
    assert extract_code(f"1. The module:\n   ```python\n{indented}   ```\n", required=["map_layer"]) == MODULE


def test_no_required_names_takes_the_last_parsing_block() -> None:
    assert extract_code("```python\nA = 1\n```\n```python\nB = 2\n```", required=[]) == "B = 2\n"


def test_extraction_never_executes_code(tmp_path: object) -> None:
    answer = "```python\nraise SystemExit('ran!')\ndef map_layer():\n    pass\n```"
    assert "SystemExit" in extract_code(answer, required=["map_layer"])


def test_top_level_names() -> None:
    source = (
        "import os\nfrom x import y\n"
        "A = 1\nB: int = 2\nC, (D, *E) = 1, (2, 3)\nF += 1\n"
        "def f():\n    inner = 1\nasync def g():\n    pass\nclass K:\n    attr = 1\n"
        "if True:\n    H = 1\nelse:\n    def h():\n        pass\n"
        "try:\n    I = 1\nexcept ImportError:\n    J = 2\nfinally:\n    L = 3\n"
        "with open('x') as fh:\n    M = 1\n"
        "obj.attr = 5\nitems[0] = 1\n"
    )
    assert top_level_names(source) == {"A", "B", "C", "D", "E", "f", "g", "K", "H", "h", "I", "J", "L", "M"}


def test_top_level_names_raises_on_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        top_level_names("def (:")
