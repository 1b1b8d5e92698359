using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using PromptFaces.Data.Entities;

namespace PromptFaces.Web.Api;

/// <summary><c>POST /account/logout</c>: a form post (antiforgery-checked) that signs out and goes home.</summary>
public static class AccountEndpoints
{
    public static IEndpointConventionBuilder MapAccountEndpoints(this IEndpointRouteBuilder app) =>
        app.MapPost("/account/logout", async (SignInManager<AppUser> signIn, [FromForm] string? returnUrl) =>
        {
            await signIn.SignOutAsync();
            return TypedResults.LocalRedirect(string.IsNullOrEmpty(returnUrl) || !returnUrl.StartsWith('/') || returnUrl.StartsWith("//") ? "/" : returnUrl);
        });
}
