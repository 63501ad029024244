"""Tests for `hmmsim.scenarios` (the registry)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.support.toy_scenarios import COUNTER, LOCKS, counter

from hmmsim import scenarios
from hmmsim.engine import Instance
from hmmsim.errors import ConfigError, InternalError, ScenarioError
from hmmsim.scenarios import Registry, Scenario, use_registry


class TestRegistry:
    def test_get_returns_the_registered_scenario(self) -> None:
        """A registered scenario is found by name."""
        registry = Registry(builtin_modules=())
        registry.register(COUNTER)

        assert COUNTER is registry.get("counter")

    def test_unknown_name_lists_the_known_ones(self) -> None:
        """An unknown name raises ConfigError listing known names."""
        registry = Registry(builtin_modules=())
        registry.register(COUNTER)
        registry.register(LOCKS)

        with pytest.raises(
            ConfigError, match=r"unknown scenario 'x' \(known: counter, locks\)"
        ):
            registry.get("x")

    def test_empty_registry_says_none_registered(self) -> None:
        """The error of an empty registry says that nothing is registered."""
        with pytest.raises(ConfigError, match="none registered"):
            Registry(builtin_modules=()).get("x")

    def test_all_keeps_registration_order(self) -> None:
        """all() lists scenarios in the order they were registered."""
        registry = Registry(builtin_modules=())
        registry.register(LOCKS)
        registry.register(COUNTER)

        assert [LOCKS, COUNTER] == registry.all()

    def test_registering_twice_is_idempotent_but_names_are_unique(self) -> None:
        """The same object may be registered again; another with its name may not."""
        registry = Registry(builtin_modules=())
        registry.register(COUNTER)
        registry.register(COUNTER)
        clash = Scenario(
            name="counter", title="t", description="", variants=("a",), build=counter
        )

        with pytest.raises(ScenarioError, match="registered twice"):
            registry.register(clash)

    def test_register_rejects_non_scenarios(self) -> None:
        """Registering something else raises ScenarioError."""
        with pytest.raises(ScenarioError, match="needs a Scenario"):
            Registry(builtin_modules=()).register("counter")  # type: ignore[arg-type]

    def test_builtin_modules_are_imported_on_first_lookup(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Built-in modules are imported lazily and register their scenarios."""
        (tmp_path / "toy_builtin_mod.py").write_text(
            "from tests.support.toy_scenarios import LOCKS\n"
            "from hmmsim.scenarios import register\n"
            "register(LOCKS)\n",
            encoding="utf-8",
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "toy_builtin_mod", raising=False)

        with use_registry(Registry(builtin_modules=("toy_builtin_mod",))) as registry:
            assert [LOCKS] == scenarios.all_scenarios()
            assert LOCKS is scenarios.get("locks")
            assert registry is scenarios.registry()

    def test_failing_builtin_module_is_an_internal_error(self) -> None:
        """A built-in module that fails to import is never skipped silently."""
        registry = Registry(builtin_modules=("hmmsim.scenarios.does_not_exist",))

        with pytest.raises(InternalError, match="does_not_exist failed to import"):
            registry.all()

    def test_lazy_package_loads_only_for_other_groups_or_a_miss(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A lazy package's scenarios stay out of all() until a miss or a group asks."""
        package = tmp_path / "toy_lazy_pkg"
        package.mkdir()
        (package / "__init__.py").write_text("", encoding="utf-8")
        (package / "b_mod.py").write_text(
            "from tests.support.toy_scenarios import counter\n"
            "from hmmsim.scenarios import Scenario, register\n"
            "register(Scenario(name='museum-toy', title='t', description='',\n"
            "    variants=('a',), build=counter, group='museum'))\n",
            encoding="utf-8",
        )
        (package / "a_mod.py").write_text(
            "import sys\nsys.modules[__name__].order = 1\n", encoding="utf-8"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        for name in ("toy_lazy_pkg", "toy_lazy_pkg.a_mod", "toy_lazy_pkg.b_mod"):
            monkeypatch.delitem(sys.modules, name, raising=False)
        registry = Registry(builtin_modules=(), lazy_packages=("toy_lazy_pkg",))
        registry.register(COUNTER)

        assert [COUNTER] == registry.all()
        assert "toy_lazy_pkg.b_mod" not in sys.modules
        assert COUNTER is registry.get("counter")
        assert "toy_lazy_pkg.b_mod" not in sys.modules
        museum = registry.get("museum-toy")
        assert "museum" == museum.group
        assert [COUNTER] == registry.all()
        assert [museum] == registry.all("museum")
        assert [COUNTER, museum] == registry.all(None)

    def test_lazy_group_listing_imports_the_package(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Listing a group other than main imports the lazy modules into this registry."""
        package = tmp_path / "toy_lazy_pkg2"
        package.mkdir()
        (package / "__init__.py").write_text("", encoding="utf-8")
        (package / "mod.py").write_text(
            "from tests.support.toy_scenarios import counter\n"
            "from hmmsim.scenarios import Scenario, register\n"
            "register(Scenario(name='museum-toy2', title='t', description='',\n"
            "    variants=('a',), build=counter, group='museum'))\n",
            encoding="utf-8",
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        for name in ("toy_lazy_pkg2", "toy_lazy_pkg2.mod"):
            monkeypatch.delitem(sys.modules, name, raising=False)
        registry = Registry(builtin_modules=(), lazy_packages=("toy_lazy_pkg2",))

        with use_registry(Registry(builtin_modules=())) as other:
            assert ["museum-toy2"] == [s.name for s in registry.all("museum")]
            assert [] == other.all(None)

    def test_failing_lazy_module_is_an_internal_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A lazy module that fails to import is an InternalError naming it."""
        package = tmp_path / "toy_lazy_bad"
        package.mkdir()
        (package / "__init__.py").write_text("", encoding="utf-8")
        (package / "broken.py").write_text("1 / 0\n", encoding="utf-8")
        monkeypatch.syspath_prepend(str(tmp_path))
        for name in ("toy_lazy_bad", "toy_lazy_bad.broken"):
            monkeypatch.delitem(sys.modules, name, raising=False)
        registry = Registry(builtin_modules=(), lazy_packages=("toy_lazy_bad",))

        assert [] == registry.all()
        with pytest.raises(
            InternalError, match=r"toy_lazy_bad\.broken failed to import"
        ):
            registry.get("x")

    def test_shipped_museum_scenarios_stay_out_of_the_matrix(self) -> None:
        """all_scenarios() is the main group; every museum scenario is found by name."""
        everything = scenarios.all_scenarios(None)
        museum = scenarios.all_scenarios(scenarios.MUSEUM_GROUP)

        assert all("main" == s.group for s in scenarios.all_scenarios())
        assert all(scenarios.MUSEUM_GROUP == s.group for s in museum)
        assert len(everything) == len(scenarios.all_scenarios()) + len(museum)
        for item in museum:
            assert item is scenarios.get(item.name)

    def test_shipped_builtins_import(self) -> None:
        """Every module listed in BUILTIN_MODULES imports without error."""
        Registry().load_builtins()


class TestDecoratorAndCollecting:
    def test_decorator_registers_a_scenario_with_the_docstring(self) -> None:
        """@scenario makes a registered Scenario whose description is the docstring."""
        with use_registry(Registry(builtin_modules=())) as registry:

            @scenarios.scenario(name="deco", title="Decorated", variants=("v",))
            def deco(variant: str) -> Instance:
                """Tasks: none."""
                return counter(variant)

            assert deco is registry.get("deco")
            assert "Tasks: none." == deco.description

    def test_collecting_keeps_scenarios_out_of_the_registry(self) -> None:
        """Inside collecting(), register() collects instead of registering."""
        with use_registry(Registry(builtin_modules=())) as registry:
            with scenarios.collecting() as bucket:
                scenarios.register(COUNTER)
                scenarios.register(COUNTER)

            assert [COUNTER] == bucket
            assert [] == registry.all()

    def test_collecting_rejects_duplicates_and_non_scenarios(self) -> None:
        """Collected scenarios still need unique names and the right type."""
        clash = Scenario(
            name="counter", title="t", description="", variants=("a",), build=counter
        )
        with scenarios.collecting():
            scenarios.register(COUNTER)
            with pytest.raises(ScenarioError, match="registered twice"):
                scenarios.register(clash)
            with pytest.raises(ScenarioError, match="needs a Scenario"):
                scenarios.register(None)  # type: ignore[arg-type]
