; Inno Setup 6 script for the trapgui Windows installer (checked against the Inno Setup 6 help,
; https://jrsoftware.org/ishelp/: [Setup] directives, Setup command line parameters).
;
; Build (after `pyinstaller packaging\trapgui.spec` made packaging\out\dist\trapgui):
;   iscc /DAppVersion=0.1.0 packaging\windows\trapgui.iss
; The version comes from pyproject.toml; the CI workflow reads it there and passes it in.
; Output: packaging\out\trapgui-<version>-windows-x64-setup.exe
;
; Install modes: per-user by default (no administrator rights: %LOCALAPPDATA%\Programs\trapgui);
; an administrator may choose "all users" in the first dialog or with /ALLUSERS
; (C:\Program Files\trapgui).
;
; Silent install for IT (documented switches of Inno Setup's Setup.exe):
;   trapgui-<version>-windows-x64-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART /CURRENTUSER
;   ... /ALLUSERS instead of /CURRENTUSER for a machine-wide install (elevated prompt)
;   ... /DIR="D:\Apps\trapgui"   another folder;   /LOG="C:\temp\trapgui-setup.log"   a log
;   ... /TASKS="desktopicon"    also a desktop shortcut
; Silent uninstall: "<install folder>\unins000.exe" /VERYSILENT /SUPPRESSMSGBOXES /NORESTART
;
; User data (catalogue database, models) lives in %LOCALAPPDATA%\trapgui and settings in
; %APPDATA%\trapgui: this script never installs, replaces or deletes anything there.

#ifndef AppVersion
  #error Pass the version from pyproject.toml: iscc /DAppVersion=x.y.z packaging\windows\trapgui.iss
#endif
#ifndef SourceDir
  #define SourceDir "..\out\dist\trapgui"
#endif
#ifndef OutputDir
  #define OutputDir "..\out"
#endif

[Setup]
; AppId identifies the app across versions (upgrades replace, not duplicate). Never change it.
AppId={{6B3A7C1E-2F4D-4E8A-9C51-7D2E0B8F4A63}
AppName=trapgui
; AppVersion is free-form; VersionInfoVersion (numeric a.b.c.d only) is left at its default so
; versions like 0.2.0rc1 compile
AppVersion={#AppVersion}
AppVerName=trapgui {#AppVersion}
AppPublisher=trapgui developers
AppPublisherURL=https://github.com/trapgui/trapgui
DefaultDirName={autopf}\trapgui
DefaultGroupName=trapgui
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern
UninstallDisplayIcon={app}\trapgui.exe
UninstallDisplayName=trapgui {#AppVersion}
OutputDir={#OutputDir}
OutputBaseFilename=trapgui-{#AppVersion}-windows-x64-setup
; The bundle is several GB of DLLs: fast LZMA2, not solid (solid gains little on DLLs and
; needs the whole archive in memory). A compressed size over 4.2 GB would need DiskSpanning=yes.
Compression=lzma2/fast
SolidCompression=no
LZMAUseSeparateProcess=yes
; Close a running trapgui before replacing its files (Restart Manager)
CloseApplications=yes
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; An upgrade replaces the whole bundle: no stale DLLs of the previous version stay behind.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\trapgui"; Filename: "{app}\trapgui.exe"; Comment: "Find and identify insects in moth light-trap images"
Name: "{autodesktop}\trapgui"; Filename: "{app}\trapgui.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\trapgui.exe"; Description: "{cm:LaunchProgram,trapgui}"; Flags: nowait postinstall skipifsilent
