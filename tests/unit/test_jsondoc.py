import pytest

from engine.errors import InvalidParameter
from engine.jsondoc import load_object


def test_an_object_comes_back_as_a_dict() -> None:
    assert load_object(b'{"a": 1}', "invalid thing") == {"a": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1, 2]", "invalid thing: not a JSON object"),
        (b"null", "invalid thing: not a JSON object"),
        (b"{", "invalid thing: Expecting property name enclosed in double quotes"),
        (b"\xff", "invalid thing: "),
    ],
)
def test_anything_else_is_refused_in_the_callers_words(data: bytes, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        load_object(data, "invalid thing")
    assert str(caught.value).startswith(message)
