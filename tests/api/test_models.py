import httpx
import openai


def test_models_are_listed_in_the_openai_shape(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"demo-vision", "demo-text", "gpt-5.5-pro"} <= set(ids)
    assert ids == sorted(ids)  # stored definitions are listed by name


def test_include_meta_shows_capabilities_and_limits(http: httpx.Client) -> None:
    data = {m["id"]: m for m in http.get("/v1/models?include_meta=true").json()["data"]}
    vision, text, pro = data["demo-vision"], data["demo-text"], data["gpt-5.5-pro"]
    assert vision["_meta"]["capabilities"]["vision"] is True
    assert text["_meta"]["capabilities"]["vision"] is False
    assert text["_meta"]["capabilities"]["tools"] is True
    assert vision["_meta"]["provider_kind"] == "openai"
    assert vision["_meta"]["aliases"] == ["vision-alias"]
    assert pro["_meta"]["limits"]["min_max_tokens"] == 200
    assert data["two-images"]["_meta"]["limits"]["max_images"] == 2
    # Claude Sonnet 4.5 thinks; Claude 2.1 does not (the anthropic kind's known models).
    assert data["claude-vision"]["_meta"]["capabilities"]["reasoning"] is True
    assert data["claude-text"]["_meta"]["capabilities"]["reasoning"] is False
    assert "_meta" not in http.get("/v1/models").json()["data"][0]


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").status_code == 200
