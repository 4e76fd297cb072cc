"""Fast checks of the installer sources (the full build + .deb test is packaging/test_deb.sh).

The spec is executed with recording stand-ins for PyInstaller's build classes, the .deb and the
self-extracting installer are built from a tiny stand-in bundle (a shell script) and really
installed, upgraded and uninstalled in a temporary HOME, and `python -m trapgui --smoke` runs
from source: what CI runs instead of the multi-GB package build.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "packaging"
VERSION = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


class _Recorder:
    """Stands in for one of PyInstaller's spec classes: keeps what the spec passed."""

    def __init__(self, calls, kind):
        self.calls, self.kind = calls, kind

    def __call__(self, *args, **kwargs):
        self.calls.append((self.kind, args, kwargs))
        # Analysis results are read as attributes (a.pure, a.scripts, ...)
        return SimpleNamespace(kind=self.kind, pure=[], scripts=[], binaries=[], datas=[])


def _run_spec(platform: str, monkeypatch):
    calls: list = []
    monkeypatch.setattr(sys, "platform", platform)
    names = ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")
    namespace = {n: _Recorder(calls, n) for n in names}
    namespace.update(SPECPATH=str(PKG), __file__=str(PKG / "trapgui.spec"), __name__="__main__")
    exec(compile((PKG / "trapgui.spec").read_text(), str(PKG / "trapgui.spec"), "exec"), namespace)
    return calls, namespace


def _call(calls, kind):
    return [c for c in calls if c[0] == kind]


def test_spec_bundles_existing_resources_and_every_trapgui_module(monkeypatch):
    calls, ns = _run_spec("linux", monkeypatch)
    (_, args, analysis), = _call(calls, "Analysis")
    assert Path(args[0][0]).is_file()
    sources = {Path(src).relative_to(ROOT).as_posix(): dest for src, dest in analysis["datas"]}
    assert sources == {"resources": "resources", "pyproject.toml": "."}
    for name in ("smoke.jpg", "trapgui.png", "trapgui.svg", "models.json"):
        assert (ROOT / "resources" / name).is_file(), f"resources/{name} is missing"

    hidden = set(analysis["hiddenimports"])
    from trapgui.cli.main import COMMAND_MODULES

    present = {m for m in COMMAND_MODULES if (ROOT / (m.replace(".", "/") + ".py")).is_file()}
    assert present and present <= hidden  # the CLI imports these by name
    assert {"trapgui.app", "trapgui.gui.launch", "trapgui.gui.smoke"} <= hidden
    for name in hidden:
        path = ROOT / name.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), name

    # sympy and torch.distributed are imported by torch/torchvision at import time
    excludes = set(analysis["excludes"])
    assert {"triton", "tensorboard", "tkinter", "IPython", "matplotlib"} <= excludes
    assert not excludes & {"sympy", "torch.distributed", "torch.testing", "numpy", "PIL"}

    tv = [Path(src).name for src, dest in analysis["binaries"] if dest == "torchvision"]
    assert any(n.startswith("_C") for n in tv), f"torchvision operators not collected: {tv}"

    (exe,) = _call(calls, "EXE")
    assert exe[2]["name"] == "trapgui" and exe[2]["console"] is True
    assert not _call(calls, "BUNDLE")
    assert ns["VERSION"] == VERSION


def test_spec_on_windows_has_a_windowed_and_a_console_exe(monkeypatch):
    calls, _ = _run_spec("win32", monkeypatch)
    exes = {c[2]["name"]: c[2]["console"] for c in _call(calls, "EXE")}
    assert exes == {"trapgui": False, "trapgui-cli": True}
    (coll,) = _call(calls, "COLLECT")
    assert coll[2]["name"] == "trapgui"


def test_spec_on_macos_builds_an_app_bundle_with_the_pyproject_version(monkeypatch):
    calls, _ = _run_spec("darwin", monkeypatch)
    (bundle,) = _call(calls, "BUNDLE")
    options = bundle[2]
    assert options["name"] == "trapgui.app"
    assert options["info_plist"]["CFBundleShortVersionString"] == VERSION
    assert options["bundle_identifier"]


def _desktop_entry(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(text)
    assert parser.sections() == ["Desktop Entry"]
    return dict(parser["Desktop Entry"])


def test_desktop_entry_is_valid(tmp_path):
    text = (PKG / "trapgui.desktop.in").read_text().replace("@EXEC@", "/usr/bin/trapgui")
    path = tmp_path / "trapgui.desktop"
    path.write_text(text)
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run([validator, str(path)], capture_output=True, text=True)
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    entry = _desktop_entry(text)
    assert entry["Type"] == "Application"
    assert entry["Terminal"] == "false"  # starts without a terminal
    assert entry["Icon"] == "trapgui" and entry["Name"]
    # no %F: the app takes no file arguments, and a folder handler would start the CLI instead
    assert entry["Exec"] == "/usr/bin/trapgui" == entry["TryExec"]
    assert "MimeType" not in entry
    main_categories = {"AudioVideo", "Audio", "Video", "Development", "Education", "Game",
                       "Graphics", "Network", "Office", "Science", "Settings", "System", "Utility"}
    categories = entry["Categories"]
    assert categories.endswith(";") and main_categories & set(categories.split(";"))
    assert entry["Keywords"].endswith(";")


def _stand_in_bundle(folder: Path) -> Path:
    """A bundle-shaped folder whose `trapgui` is a shell script: packs and installs in a blink."""
    bundle = folder / "trapgui"
    (bundle / "_internal" / "resources").mkdir(parents=True)
    shutil.copy(ROOT / "resources" / "smoke.jpg", bundle / "_internal" / "resources")
    script = bundle / "trapgui"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "trapgui stand-in"; exit 0; fi\n'
        'mkdir -p "$HOME/.local/share/trapgui" && echo data >> "$HOME/.local/share/trapgui/db"\n'
    )
    script.chmod(0o755)
    return bundle


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")
def test_deb_has_pyproject_version_depends_and_menu_files(tmp_path):
    bundle = _stand_in_bundle(tmp_path / "dist")
    deb = tmp_path / f"trapgui_{VERSION}_amd64.deb"
    subprocess.run(["bash", str(PKG / "deb" / "make_deb.sh"), str(bundle), str(deb), VERSION],
                   check=True, capture_output=True)

    def field(name):
        return subprocess.run(["dpkg-deb", "-f", str(deb), name], check=True,
                              capture_output=True, text=True).stdout.strip()

    assert field("Package") == "trapgui"
    assert field("Version") == VERSION
    depends = [d.strip() for d in field("Depends").split(",")]
    for lib in ("libgl1", "libegl1", "libxkbcommon-x11-0", "libxcb-cursor0", "libfontconfig1",
                "libdbus-1-3", "libwayland-cursor0"):
        assert lib in depends
    assert re.fullmatch(r"libc6 \(>= \d+\.\d+\)", depends[0])
    assert int(field("Installed-Size")) > 0

    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True,
                             text=True).stdout
    entries = {line.split()[-1]: line.split()[1] for line in listing.splitlines()}
    for path in ("./opt/trapgui/trapgui", "./usr/bin/trapgui",
                 "./usr/share/applications/trapgui.desktop",
                 "./usr/share/icons/hicolor/256x256/apps/trapgui.png",
                 "./usr/share/icons/hicolor/scalable/apps/trapgui.svg"):
        assert path in entries, path
        assert entries[path] == "root/root"
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    for script in ("postinst", "postrm"):
        code = re.sub(r"#.*", "", (control / script).read_text())
        assert os.access(control / script, os.X_OK)
        # maintainer scripts never touch users' data
        assert not re.search(r"\$HOME|/home|\.local|rm -", code), script
    assert "/opt/trapgui/trapgui" in (PKG / "deb" / "trapgui.sh").read_text()


def _sh(*args, home: Path, check=True):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.run(["sh", *map(str, args)], env=env, capture_output=True, text=True,
                          check=check)


def test_self_extracting_installer_installs_upgrades_and_uninstalls_keeping_user_data(tmp_path):
    bundle = _stand_in_bundle(tmp_path / "dist")
    run = tmp_path / "trapgui.run"
    subprocess.run(["bash", str(PKG / "selfextract" / "make_run.sh"), str(bundle), str(run),
                    VERSION], check=True, capture_output=True)
    home = tmp_path / "home"
    home.mkdir()
    assert "checksum OK" in _sh(run, "--check", home=home).stdout

    out = _sh(run, home=home).stdout
    prefix = home / ".local/share/trapgui-app"
    launcher = home / ".local/bin/trapgui"
    desktop = home / ".local/share/applications/trapgui.desktop"
    assert f"trapgui {VERSION} is installed in {prefix}" in out
    assert (prefix / ".trapgui-app").read_text().strip() == VERSION
    entry = _desktop_entry(desktop.read_text())
    assert entry["Exec"] == str(launcher) and entry["Terminal"] == "false"
    assert (home / ".local/share/icons/hicolor/256x256/apps/trapgui.png").is_file()
    assert subprocess.run([str(launcher), "--version"], capture_output=True, text=True,
                          check=True).stdout.strip() == "trapgui stand-in"

    subprocess.run([str(launcher)], env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, check=True)
    user_db = home / ".local/share/trapgui/db"
    assert user_db.read_text() == "data\n"

    # upgrade: the same payload behind a newer version line
    newer = tmp_path / "newer.run"
    newer.write_bytes(run.read_bytes().replace(f'VERSION="{VERSION}"'.encode(),
                                               f'VERSION="{VERSION}.post1"'.encode(), 1))
    _sh(newer, home=home)
    assert (prefix / ".trapgui-app").read_text().strip() == f"{VERSION}.post1"
    assert not list(prefix.parent.glob("trapgui-app.*")), "staging folders left behind"
    assert user_db.read_text() == "data\n"

    # a truncated download fails with a clear message and leaves the installation working
    truncated = tmp_path / "truncated.run"
    truncated.write_bytes(run.read_bytes()[:-2000])
    assert _sh(truncated, "--check", home=home, check=False).returncode != 0
    failed = _sh(truncated, home=home, check=False)
    assert failed.returncode != 0 and "damaged or incomplete" in failed.stderr
    assert (prefix / ".trapgui-app").read_text().strip() == f"{VERSION}.post1"

    # refuses to install over the user's data folder (the uninstaller deletes its prefix)
    refused = _sh(run, "--prefix", home / ".local/share/trapgui", home=home, check=False)
    assert refused.returncode != 0 and "refusing" in refused.stderr

    subprocess.run([str(home / ".local/bin/trapgui-uninstall")], check=True, capture_output=True)
    assert not prefix.exists() and not launcher.exists() and not desktop.exists()
    assert not (home / ".local/bin/trapgui-uninstall").is_symlink()
    assert user_db.read_text() == "data\n"


def test_shell_scripts_parse():
    for script in [*PKG.rglob("*.sh")]:
        if "out" in script.relative_to(PKG).parts:
            continue
        shell = "sh" if script.name in ("header.sh", "trapgui.sh") or script.parent.name == "deb" \
            else "bash"
        subprocess.run([shell, "-n", str(script)], check=True)
    for script in ("postinst", "postrm"):
        subprocess.run(["sh", "-n", str(PKG / "deb" / script)], check=True)


def test_inno_setup_script_is_per_user_and_takes_the_version_from_outside():
    iss = (PKG / "windows" / "trapgui.iss").read_text()
    setup = dict(re.findall(r"^(\w+)=(.*)$", iss, re.M))
    assert setup["PrivilegesRequired"] == "lowest"
    assert set(setup["PrivilegesRequiredOverridesAllowed"].split()) == {"dialog", "commandline"}
    assert setup["AppVersion"] == "{#AppVersion}"
    assert setup["DefaultDirName"] == r"{autopf}\trapgui"
    assert setup["ArchitecturesInstallIn64BitMode"] == "x64compatible"
    assert re.search(r"#ifndef AppVersion\s+#error", iss)
    assert re.search(r'^Name: "\{autoprograms\}\\trapgui"; Filename: "\{app\}\\trapgui.exe"', iss, re.M)
    for switch in ("/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART", "/CURRENTUSER"):
        assert switch in iss


def test_workflow_builds_each_platform_and_passes_the_pyproject_version():
    workflow = yaml.safe_load((ROOT / ".github/workflows/installers.yml").read_text())
    jobs = workflow["jobs"]
    assert set(jobs) == {"linux", "windows", "macos"}
    for name, job in jobs.items():
        steps = job["steps"]
        runs = "\n".join(s.get("run", "") for s in steps)
        assert "--smoke" in runs or "test_deb.sh" in runs, name
        assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in steps), name
        setup = [s for s in steps if s.get("uses", "").startswith("actions/setup-python")]
        assert setup and setup[0]["with"]["python-version"] == "3.11", name

    steps = jobs["windows"]["steps"]
    version_step = next(s for s in steps if s.get("id") == "version")
    code = re.search(r'python -c "([^"]+)"', version_step["run"]).group(1)
    printed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
    assert printed == VERSION
    iscc = next(s["run"] for s in steps if "ISCC.exe" in s.get("run", ""))
    assert '"/DAppVersion=${{ steps.version.outputs.version }}"' in iscc
    assert "/VERYSILENT" in "\n".join(s.get("run", "") for s in steps)


def test_resources_and_version_are_found_from_source_and_from_a_bundle(tmp_path, monkeypatch):
    from trapgui.gui import resources as gui_resources
    from trapgui.ml import model_catalogue as catalogue
    from trapgui import version

    assert catalogue.resource_path("models.json") == ROOT / "resources" / "models.json"
    assert gui_resources.resource_path("smoke.jpg") == ROOT / "resources" / "smoke.jpg"
    assert version.__version__ == VERSION

    # a frozen build: PyInstaller's unpack folder comes first
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "models.json").write_text("{}")
    (tmp_path / "resources" / "smoke.jpg").write_bytes(b"x")
    (tmp_path / "pyproject.toml").write_text('[project]\nversion = "9.8.7"\n')
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert catalogue.resource_path("models.json") == tmp_path / "resources" / "models.json"
    assert gui_resources.resource_path("smoke.jpg") == tmp_path / "resources" / "smoke.jpg"
    assert version._read_version() == "9.8.7"


@pytest.mark.slow
def test_smoke_mode_from_source(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAPGUI_")}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path),
               XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run([sys.executable, "-m", "trapgui", "--smoke"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "OK" in result.stdout + result.stderr
    # the user's data folder stays untouched by the smoke run
    assert not (tmp_path / "data" / "trapgui").exists()
