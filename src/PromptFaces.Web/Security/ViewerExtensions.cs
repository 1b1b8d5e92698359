using System.Security.Claims;
using PromptFaces.Data;
using PromptFaces.Data.Entities;

namespace PromptFaces.Web.Security;

public static class ViewerExtensions
{
    /// <summary>The signed-in user as a <see cref="Viewer"/>, or null for an anonymous principal.</summary>
    public static Viewer? ToViewer(this ClaimsPrincipal principal) =>
        principal.Identity?.IsAuthenticated == true && principal.FindFirstValue(ClaimTypes.NameIdentifier) is { } id
            ? new Viewer(id, principal.IsInRole(Roles.Admin))
            : null;
}
