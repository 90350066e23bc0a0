"""Agent configuration (spec §3.1, §5.1) through the official SDK in strict mode: every
request shape is normalised to the resolved response shape (model object, toolsets with
concrete `configs`/`default_config`, MCP servers, skills with a version, multiagent with its
defaults, execution identity), update semantics, and invalid configurations → 400.

Responses are validated by the SDK itself (`_strict_response_validation=True`); the asserts
below pin the resolved values.
"""

import anthropic
import pytest

from conftest import assert_no_extra

MODEL = "claude-opus-4-8"


def bad_request(call, *fragments):
    """Runs `call`, expects a 400 `invalid_request_error`, and checks its message."""
    with pytest.raises(anthropic.BadRequestError) as err:
        call()
    assert err.value.type == "invalid_request_error"
    message = err.value.body["error"]["message"]
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def dump(model):
    return model.model_dump(mode="json")


# --- model ---------------------------------------------------------------------------------


def test_model_string_is_returned_as_resolved_object(client, unique):
    agent = client.beta.agents.create(model=MODEL, name=f"m-{unique}")
    assert dump(agent.model) == {"id": MODEL, "effort": {"type": "high"}, "inference_geo": None, "speed": "standard"}
    assert_no_extra(agent)


def test_model_config_object_with_all_options(client, unique):
    agent = client.beta.agents.create(
        model={"id": "claude-sonnet-4-6", "effort": "low", "speed": "fast", "inference_geo": "us"},
        name=f"m2-{unique}",
    )
    assert agent.model.id == "claude-sonnet-4-6"
    assert agent.model.effort.type == "low"
    assert agent.model.speed == "fast"
    assert agent.model.inference_geo == "us"

    # The object form of effort is accepted too; unknown model ids are allowed (open enum).
    other = client.beta.agents.create(model={"id": "my-own-model", "effort": {"type": "xhigh"}}, name=f"m3-{unique}")
    assert other.model.id == "my-own-model" and other.model.effort.type == "xhigh"


def test_model_update_is_whole_object_but_keeps_effort_for_the_same_id(client, unique):
    agent = client.beta.agents.create(
        model={"id": MODEL, "effort": "max", "speed": "fast", "inference_geo": "us"}, name=f"mu-{unique}"
    )
    v2 = client.beta.agents.update(agent.id, model={"id": MODEL})
    assert v2.version == 2
    assert v2.model.effort.type == "max", "omitted effort is kept while the model id is unchanged"
    assert v2.model.inference_geo is None, "omitting inference_geo clears the pin"
    assert v2.model.speed == "standard"

    v3 = client.beta.agents.update(agent.id, model="claude-haiku-4-5")
    assert v3.model.id == "claude-haiku-4-5" and v3.model.effort.type == "high", "a new id resets effort"

    same = client.beta.agents.update(agent.id, model={"id": "claude-haiku-4-5", "effort": "high"})
    assert same.version == 3, "an identical model writes no new version"

    bad_request(lambda: client.beta.agents.update(agent.id, model=None), "model")


def test_invalid_model_values(client, unique):
    name = f"mb-{unique}"
    bad_request(lambda: client.beta.agents.create(model={"id": MODEL, "effort": "huge"}, name=name), "model.effort")
    bad_request(lambda: client.beta.agents.create(model={"id": MODEL, "speed": "turbo"}, name=name), "model.speed")
    bad_request(lambda: client.beta.agents.create(model={"id": MODEL, "inference_geo": "mars"}, name=name), "inference_geo")
    bad_request(lambda: client.beta.agents.create(model={"speed": "fast"}, name=name), "model.id")
    bad_request(lambda: client.beta.agents.create(model="", name=name), "model")


# --- built-in toolset ----------------------------------------------------------------------


def test_bare_toolset_is_resolved(client, unique):
    agent = client.beta.agents.create(model=MODEL, name=f"t-{unique}", tools=[{"type": "agent_toolset_20260401"}])
    (tool,) = agent.tools
    assert tool.type == "agent_toolset_20260401"
    assert tool.configs == []
    assert tool.default_config.enabled is True
    assert tool.default_config.permission_policy.type == "always_allow"
    assert_no_extra(agent)


def test_tool_configs_inherit_from_default_config(client, unique):
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"tc-{unique}",
        tools=[
            {
                "type": "agent_toolset_20260401",
                "default_config": {"enabled": False, "permission_policy": {"type": "always_ask"}},
                "configs": [
                    {"name": "bash", "enabled": True},
                    {"name": "read", "type": "read", "permission_policy": {"type": "auto"}},
                    {
                        "name": "web_fetch",
                        "enabled": True,
                        "allowed_domains": ["docs.example.com"],
                        "max_content_tokens": 4000,
                        "url_sources": {"user_input": "none", "server_tool_results": "all"},
                    },
                    {
                        "name": "web_search",
                        "blocked_domains": ["ads.example.com"],
                        "user_location": {"type": "approximate", "country": "FR", "city": "Paris"},
                    },
                ],
            }
        ],
    )
    (tool,) = agent.tools
    assert tool.default_config.enabled is False
    assert tool.default_config.permission_policy.type == "always_ask"
    bash, read, fetch, search = tool.configs
    assert (bash.type, bash.name, bash.enabled, bash.permission_policy.type) == ("bash", "bash", True, "always_ask")
    assert (read.type, read.enabled, read.permission_policy.type) == ("read", False, "auto")
    assert fetch.type == "web_fetch" and fetch.enabled is True
    assert fetch.allowed_domains == ["docs.example.com"] and fetch.blocked_domains is None
    assert fetch.max_content_tokens == 4000
    # url_sources always comes back in object form; unset keys are null.
    assert dump(fetch.url_sources) == {
        "client_tool_results": None,
        "server_tool_results": {"type": "all"},
        "user_input": {"type": "none"},
    }
    assert search.type == "web_search" and search.enabled is False
    assert search.blocked_domains == ["ads.example.com"]
    assert dump(search.user_location) == {
        "type": "approximate",
        "city": "Paris",
        "country": "FR",
        "region": None,
        "timezone": None,
    }
    assert_no_extra(agent)

    got = client.beta.agents.retrieve(agent.id)
    assert dump(got.tools[0]) == dump(agent.tools[0])


def test_url_sources_can_name_custom_tools(client, unique):
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"us-{unique}",
        tools=[
            {
                "type": "agent_toolset_20260401",
                "configs": [
                    {
                        "name": "web_fetch",
                        "url_sources": {
                            "client_tool_results": {"type": "only", "tools": [{"type": "tool_reference", "name": "lookup"}]}
                        },
                    }
                ],
            },
            {"type": "custom", "name": "lookup", "description": "Look up", "input_schema": {"type": "object"}},
        ],
    )
    filt = agent.tools[0].configs[0].url_sources.client_tool_results
    assert filt.type == "only" and [t.name for t in filt.tools] == ["lookup"]

    bad_request(
        lambda: client.beta.agents.create(
            model=MODEL,
            name=f"us2-{unique}",
            tools=[
                {
                    "type": "agent_toolset_20260401",
                    "configs": [
                        {
                            "name": "web_fetch",
                            "url_sources": {
                                "client_tool_results": {
                                    "type": "only",
                                    "tools": [{"type": "tool_reference", "name": "missing"}],
                                }
                            },
                        }
                    ],
                }
            ],
        ),
        "tools[0].configs[0].url_sources.client_tool_results.tools[0].name",
    )


def test_invalid_toolset_configs(client, unique):
    def create(*tools):
        return lambda: client.beta.agents.create(model=MODEL, name=f"tb-{unique}", tools=list(tools))

    ts = "agent_toolset_20260401"
    bad_request(create({"type": ts, "configs": [{"name": "computer"}]}), "tools[0].configs[0].name", "computer")
    bad_request(create({"type": ts, "configs": [{"name": "bash"}, {"name": "bash"}]}), "tools[0].configs[1].name")
    bad_request(create({"type": ts, "configs": [{"name": "bash", "type": "grep"}]}), "tools[0].configs[0].type")
    bad_request(
        create({"type": ts, "default_config": {"permission_policy": {"type": "sometimes"}}}),
        "tools[0].default_config.permission_policy.type",
    )
    bad_request(create({"type": ts}, {"type": ts}), "tools[1]")
    bad_request(
        create({"type": ts, "configs": [{"name": "bash", "allowed_domains": ["example.com"]}]}),
        "tools[0].configs[0].allowed_domains",
    )
    wf = lambda **kw: create({"type": ts, "configs": [{"name": "web_fetch", **kw}]})  # noqa: E731
    bad_request(wf(allowed_domains=[]), "allowed_domains", "empty")
    bad_request(wf(allowed_domains=["a.example.com"], blocked_domains=["b.example.com"]), "blocked_domains")
    bad_request(wf(allowed_domains=[f"d{i}.example.com" for i in range(65)]), "64")
    for domain in ["https://example.com", "example.com:8080", "*.example.com", "10.0.0.1", "localhost", "db.internal", "co.uk", "example.com/path"]:
        bad_request(wf(allowed_domains=["ok.example.com", domain]), "tools[0].configs[0].allowed_domains[1]")
    bad_request(wf(url_sources={"user_input": "none", "client_tool_results": "none", "server_tool_results": "none"}), "none")
    bad_request(
        wf(url_sources={"server_tool_results": {"type": "only", "tools": [{"type": "tool_reference", "name": "bash"}]}}),
        "server_tool_results.tools[0].name",
    )
    bad_request(wf(max_content_tokens=0), "max_content_tokens")
    # web_search entries may carry a path
    ok = client.beta.agents.create(
        model=MODEL,
        name=f"tb-ok-{unique}",
        tools=[{"type": ts, "configs": [{"name": "web_search", "allowed_domains": ["example.com/docs"]}]}],
    )
    assert ok.tools[0].configs[0].allowed_domains == ["example.com/docs"]


# --- MCP -----------------------------------------------------------------------------------


def test_mcp_toolset_defaults_to_always_ask(client, unique):
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"mcp-{unique}",
        mcp_servers=[{"type": "url", "name": "github", "url": "https://mcp.example.com/github"}],
        tools=[
            {
                "type": "mcp_toolset",
                "mcp_server_name": "github",
                "configs": [
                    {"name": "create_issue", "permission_policy": {"type": "always_allow"}},
                    {"name": "delete_repo", "enabled": False},
                ],
            }
        ],
    )
    assert dump(agent.mcp_servers[0]) == {"type": "url", "name": "github", "url": "https://mcp.example.com/github"}
    (toolset,) = agent.tools
    assert toolset.type == "mcp_toolset" and toolset.mcp_server_name == "github"
    assert toolset.default_config.enabled is True
    assert toolset.default_config.permission_policy.type == "always_ask"
    assert [(c.name, c.enabled, c.permission_policy.type) for c in toolset.configs] == [
        ("create_issue", True, "always_allow"),
        ("delete_repo", False, "always_ask"),
    ]
    assert_no_extra(agent)


def test_mcp_servers_and_toolsets_must_reference_each_other(client, unique):
    server = lambda name: {"type": "url", "name": name, "url": "https://mcp.example.com/x"}  # noqa: E731
    toolset = lambda name: {"type": "mcp_toolset", "mcp_server_name": name}  # noqa: E731

    def create(servers, tools):
        return lambda: client.beta.agents.create(model=MODEL, name=f"mr-{unique}", mcp_servers=servers, tools=tools)

    bad_request(create([server("gh")], []), "mcp_servers[0]", "not referenced")
    bad_request(create([], [toolset("gh")]), "tools[0].mcp_server_name")
    bad_request(create([server("gh"), server("gh")], [toolset("gh")]), "mcp_servers[1].name")
    bad_request(create([server("gh")], [toolset("gh"), toolset("gh")]), "tools[1].mcp_server_name")
    bad_request(create([{"type": "websocket", "name": "gh", "url": "x"}], [toolset("gh")]), "mcp_servers[0].type")
    # `stdio` is oma's extension (a server run inside the session's box): it needs a command.
    bad_request(create([{"type": "stdio", "name": "gh", "url": "x"}], [toolset("gh")]), "mcp_servers[0].command")
    bad_request(create([{"type": "url", "name": "gh", "url": "not a url"}], [toolset("gh")]), "mcp_servers[0].url")
    many = [f"s{i}" for i in range(21)]
    bad_request(create([server(n) for n in many], [toolset(n) for n in many]), "mcp_servers", "20")

    # On update the rule applies to the resulting configuration.
    agent = client.beta.agents.create(model=MODEL, name=f"mr-ok-{unique}", mcp_servers=[server("gh")], tools=[toolset("gh")])
    bad_request(lambda: client.beta.agents.update(agent.id, tools=[]), "mcp_servers[0]")
    bad_request(lambda: client.beta.agents.update(agent.id, mcp_servers=None), "tools[0].mcp_server_name")
    cleared = client.beta.agents.update(agent.id, tools=None, mcp_servers=[])
    assert cleared.version == 2 and cleared.tools == [] and cleared.mcp_servers == []


# --- custom tools --------------------------------------------------------------------------


def test_custom_tool_round_trip(client, unique):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"ct-{unique}",
        tools=[{"type": "custom", "name": "get_weather", "description": "Weather by city", "input_schema": schema}],
    )
    (tool,) = agent.tools
    assert (tool.type, tool.name, tool.description) == ("custom", "get_weather", "Weather by city")
    assert tool.input_schema.type == "object"
    assert tool.input_schema.properties == {"city": {"type": "string"}}
    assert tool.input_schema.required == ["city"]
    assert_no_extra(agent)


def test_invalid_custom_tools(client, unique):
    schema = {"type": "object"}

    def create(*tools):
        return lambda: client.beta.agents.create(model=MODEL, name=f"cb-{unique}", tools=list(tools))

    custom = lambda name, **kw: {"type": "custom", "name": name, "description": "d", "input_schema": schema, **kw}  # noqa: E731
    bad_request(create(custom("has space")), "tools[0].name")
    bad_request(create(custom("x" * 129)), "tools[0].name")
    bad_request(create(custom("dup"), custom("dup")), "tools[1].name", "duplicate")
    bad_request(create({"type": "agent_toolset_20260401"}, custom("bash")), "tools[1].name", "built-in")
    bad_request(create(custom("ok", input_schema={"type": "array"})), "tools[0].input_schema.type")
    bad_request(create({"type": "custom", "name": "ok", "description": "d"}), "tools[0].input_schema")
    bad_request(create(*[custom(f"t{i}") for i in range(257)]), "256")


def test_unknown_type_literals_name_the_field(client, unique):
    name = f"ut-{unique}"
    bad_request(
        lambda: client.beta.agents.create(model=MODEL, name=name, tools=[{"type": "agent_toolset_20260401"}, {"type": "computer_2025"}]),
        "tools[1].type",
        "computer_2025",
    )
    bad_request(lambda: client.beta.agents.create(model=MODEL, name=name, skills=[{"type": "plugin", "skill_id": "x"}]), "skills[0].type")
    bad_request(lambda: client.beta.agents.create(model=MODEL, name=name, multiagent={"type": "swarm"}), "multiagent.type")
    bad_request(
        lambda: client.beta.agents.create(model=MODEL, name=name, execution_identity={"type": "gcp_service_account"}),
        "execution_identity.type",
    )


# --- skills, execution identity --------------------------------------------------------------


def test_skills_get_a_concrete_version(client, unique):
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"sk-{unique}",
        skills=[{"type": "anthropic", "skill_id": "xlsx"}, {"type": "custom", "skill_id": "skill_01abc", "version": "1759178010641129"}],
    )
    assert [dump(s) for s in agent.skills] == [
        {"type": "anthropic", "skill_id": "xlsx", "version": "latest"},
        {"type": "custom", "skill_id": "skill_01abc", "version": "1759178010641129"},
    ]
    bad_request(
        lambda: client.beta.agents.create(
            model=MODEL, name=f"sk2-{unique}", skills=[{"type": "anthropic", "skill_id": "pdf"}, {"type": "anthropic", "skill_id": "pdf"}]
        ),
        "skills[1].skill_id",
    )
    cleared = client.beta.agents.update(agent.id, skills=[])
    assert cleared.skills == [] and cleared.version == 2


def test_execution_identity(client, unique):
    arn = "arn:aws:iam::123456789012:role/agent-runner"
    agent = client.beta.agents.create(
        model=MODEL, name=f"ei-{unique}", execution_identity={"type": "aws_role", "role_arn": arn}
    )
    assert agent.execution_identity.type == "aws_role" and agent.execution_identity.role_arn == arn
    restored = client.beta.agents.update(agent.id, execution_identity=None)
    assert dump(restored.execution_identity) == {"type": "service_account"}
    same = client.beta.agents.update(agent.id, execution_identity={"type": "service_account"})
    assert same.version == restored.version, "the default sent explicitly is no change"
    bad_request(
        lambda: client.beta.agents.create(model=MODEL, name=f"ei2-{unique}", execution_identity={"type": "aws_role", "role_arn": "nope"}),
        "execution_identity.role_arn",
    )


# --- multiagent ----------------------------------------------------------------------------


def test_multiagent_20261001_defaults(client, unique):
    agent = client.beta.agents.create(model=MODEL, name=f"ma-{unique}", multiagent={"type": "multiagent_20261001"})
    assert dump(agent.multiagent) == {
        "type": "multiagent_20261001",
        "advisor": {"type": "disabled"},
        "subagents": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []},
        "workflows": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []},
    }
    assert_no_extra(agent)


def test_multiagent_20261001_merges_on_update(client, unique):
    helper = client.beta.agents.create(model=MODEL, name=f"helper-{unique}")
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"mm-{unique}",
        multiagent={
            "type": "multiagent_20261001",
            "advisor": {"type": "enabled", "model": MODEL},
            "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}, "predefined_agents": [{"type": "self"}]},
            "workflows": {"type": "disabled"},
        },
    )
    ma = agent.multiagent
    assert ma.advisor.type == "enabled" and ma.advisor.model == MODEL
    assert ma.subagents.inline_agents.type == "disabled"
    assert dump(ma.subagents.predefined_agents[0]) == {"type": "agent", "id": agent.id, "version": 1}
    assert ma.workflows.type == "disabled"

    # Only `workflows` is sent: advisor and subagents are kept.
    v2 = client.beta.agents.update(
        agent.id,
        multiagent={"type": "multiagent_20261001", "workflows": {"type": "enabled", "predefined_agents": [helper.id]}},
    )
    assert v2.version == 2
    assert v2.multiagent.advisor.type == "enabled"
    assert v2.multiagent.subagents.inline_agents.type == "disabled"
    assert dump(v2.multiagent.subagents.predefined_agents[0]) == {"type": "agent", "id": agent.id, "version": 2}
    assert v2.multiagent.workflows.type == "enabled"
    assert v2.multiagent.workflows.inline_agents.type == "enabled"
    assert dump(v2.multiagent.workflows.predefined_agents[0]) == {"type": "agent", "id": helper.id, "version": 1}

    # A null member takes its default.
    v3 = client.beta.agents.update(agent.id, multiagent={"type": "multiagent_20261001", "advisor": None})
    assert v3.multiagent.advisor.type == "disabled"

    # Re-sending just the type changes nothing.
    same = client.beta.agents.update(agent.id, multiagent={"type": "multiagent_20261001"})
    assert same.version == v3.version

    bad_request(
        lambda: client.beta.agents.update(
            agent.id, multiagent={"type": "multiagent_20261001", "subagents": {"type": "enabled", "predefined_agents": None}}
        ),
        "multiagent.subagents",
        "inline_agents",
    )
    cleared = client.beta.agents.update(agent.id, multiagent=None)
    assert cleared.multiagent is None


def test_coordinator_roster(client, unique):
    member = client.beta.agents.create(model=MODEL, name=f"member-{unique}")
    agent = client.beta.agents.create(
        model=MODEL,
        name=f"co-{unique}",
        multiagent={
            "type": "coordinator",
            "agents": [{"type": "agent", "id": member.id, "version": 1}, {"type": "self"}, {"type": "advisor", "model": MODEL}],
        },
    )
    assert [dump(e) for e in agent.multiagent.agents] == [
        {"type": "agent", "id": member.id, "version": 1},
        {"type": "agent", "id": agent.id, "version": 1},
        {"type": "advisor", "model": MODEL},
    ]
    # `self` always names this agent at the version being read.
    v2 = client.beta.agents.update(agent.id, system="now with a prompt")
    assert dump(v2.multiagent.agents[1]) == {"type": "agent", "id": agent.id, "version": 2}
    assert dump(client.beta.agents.retrieve(agent.id, version=1).multiagent.agents[1])["version"] == 1

    def create(agents):
        return lambda: client.beta.agents.create(
            model=MODEL, name=f"co2-{unique}", multiagent={"type": "coordinator", "agents": agents}
        )

    bad_request(create([]), "multiagent.agents")
    bad_request(create([{"type": "self"}, {"type": "self"}]), "multiagent.agents[1]")
    bad_request(create([member.id, {"type": "agent", "id": member.id}]), "multiagent.agents[1]")
    bad_request(create([{"type": "team"}]), "multiagent.agents[0].type")


def test_multiagent_references_are_checked_against_the_store(client, other_client, unique):
    bad_request(
        lambda: client.beta.agents.create(
            model=MODEL, name=f"ref-{unique}", multiagent={"type": "coordinator", "agents": ["agent_does_not_exist"]}
        ),
        "multiagent.agents[0]",
    )
    theirs = other_client.beta.agents.create(model=MODEL, name=f"theirs-{unique}")
    bad_request(
        lambda: client.beta.agents.create(
            model=MODEL, name=f"ref2-{unique}", multiagent={"type": "coordinator", "agents": [theirs.id]}
        ),
        "multiagent.agents[0]",
    )
    member = client.beta.agents.create(model=MODEL, name=f"latest-{unique}")
    client.beta.agents.update(member.id, system="v2")
    agent = client.beta.agents.create(model=MODEL, name=f"ref3-{unique}", multiagent={"type": "coordinator", "agents": [member.id]})
    assert agent.multiagent.agents[0].version == 2, "an unpinned reference resolves to the latest version"


# --- whole-config update semantics ------------------------------------------------------------


def rich_config(unique):
    return dict(
        model={"id": MODEL, "effort": "medium"},
        name=f"rich-{unique}",
        description="does things",
        system="You are helpful.",
        mcp_servers=[{"type": "url", "name": "docs", "url": "https://mcp.example.com/docs"}],
        tools=[
            {"type": "agent_toolset_20260401", "configs": [{"name": "bash", "enabled": False}]},
            {"type": "mcp_toolset", "mcp_server_name": "docs"},
            {"type": "custom", "name": "lookup", "description": "Look up", "input_schema": {"type": "object"}},
        ],
        skills=[{"type": "anthropic", "skill_id": "pdf"}],
        multiagent={"type": "multiagent_20261001", "workflows": {"type": "disabled"}},
        metadata={"team": "qa"},
    )


def test_resending_a_rich_config_is_a_no_op(client, unique):
    cfg = rich_config(unique)
    agent = client.beta.agents.create(**cfg)
    assert_no_extra(agent)
    cfg.pop("metadata")
    same = client.beta.agents.update(agent.id, version=1, **cfg)
    assert same.version == 1
    assert dump(same) == dump(agent)

    versions = list(client.beta.agents.versions.list(agent.id))
    assert [v.version for v in versions] == [1]
    assert dump(versions[0].tools[0]) == dump(agent.tools[0])


def test_update_clears_with_null_and_empty(client, unique):
    agent = client.beta.agents.create(**rich_config(unique))
    v2 = client.beta.agents.update(agent.id, description="", system=None, tools=None, mcp_servers=None, skills=[])
    assert v2.version == 2
    assert v2.description is None and v2.system is None
    assert v2.tools == [] and v2.mcp_servers == [] and v2.skills == []
    # untouched fields are preserved
    assert v2.model.effort.type == "medium"
    assert v2.multiagent.workflows.type == "disabled"
    assert v2.metadata == {"team": "qa"}
    bad_request(lambda: client.beta.agents.update(agent.id, name=None), "name")


def test_other_tenant_cannot_read_a_configured_agent(client, other_client, unique):
    agent = client.beta.agents.create(**rich_config(unique))
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.agents.retrieve(agent.id)
    with pytest.raises(anthropic.NotFoundError):
        other_client.beta.agents.update(agent.id, tools=[])
    with pytest.raises(anthropic.NotFoundError):
        list(other_client.beta.agents.versions.list(agent.id))
