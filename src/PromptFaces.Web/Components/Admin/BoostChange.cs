namespace PromptFaces.Web.Components.Admin;

/// <summary>An admin's new priority boost for a job.</summary>
public readonly record struct BoostChange(Guid JobId, double Boost);
