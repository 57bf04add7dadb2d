namespace PSNetfilter;

/// <summary>What Install-PortForwardService installed: the unit, its files, the saved forwards and the unit's state.</summary>
public sealed class PortForwardService
{
    /// <summary>e.g. <c>psnetfilter.service</c>.</summary>
    public required string UnitName { get; init; }

    /// <summary>The named namespace the unit restores into; null for the one systemd runs in.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>The root the files were written under ("/" for this machine).</summary>
    public required string Root { get; init; }

    /// <summary>The unit file, as seen from here (under <see cref="Root"/>).</summary>
    public required string UnitPath { get; init; }

    /// <summary>The boot-set script (saved rules and the code that restores them), as seen from here.</summary>
    public required string ScriptPath { get; init; }

    /// <summary>Every file of the service: script, unit, and the multi-user.target.wants symlink.</summary>
    public required IReadOnlyList<string> Files { get; init; }

    /// <summary>The saved forwards, sorted by name.</summary>
    public required IReadOnlyList<PortForward> Forwards { get; init; }

    /// <summary>True when the multi-user.target.wants symlink points to the unit.</summary>
    public bool Enabled { get; init; }

    /// <summary>
    /// <c>systemctl is-active</c> (active, inactive, failed...) when systemd runs this machine;
    /// otherwise <c>NotStarted</c>.
    /// </summary>
    public required string State { get; init; }

    /// <summary>True when this call (re)started the unit.</summary>
    public bool Started { get; init; }

    /// <summary>True when any file was written (false: the same set was already installed, byte for byte).</summary>
    public bool Changed { get; init; }

    public override string ToString() => $"{UnitName} ({Forwards.Count} forwards, {State})";
}
