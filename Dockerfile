# PromptFaces web app: build and publish with the .NET 10 SDK, run on the ASP.NET Core 10 runtime image.
# The two base images are build arguments, so this file names no registry: pass Microsoft's official .NET 10 images
# (repositories dotnet/sdk and dotnet/aspnet, tag 10.0) as your registry or mirror serves them:
#   docker build --build-arg SDK_IMAGE=<registry>/dotnet/sdk:10.0 --build-arg RUNTIME_IMAGE=<registry>/dotnet/aspnet:10.0 -t promptfaces .
#   docker run -p 8080:8080 -v promptfaces-data:/app/data promptfaces
# The image carries the shipped default models (models/); mount real weights and point PromptFaces:Engine at them
# (for example -e PromptFaces__Engine__ModelsFolder=/models -v /path/to/models:/models) to use those instead.

ARG SDK_IMAGE
ARG RUNTIME_IMAGE

# ---- build ----
FROM ${SDK_IMAGE} AS build
WORKDIR /src

# Restore first, from the project files alone, so the package layer is cached until a project file changes.
COPY global.json Directory.Build.props Directory.Packages.props PromptFaces.sln ./
COPY build/ build/
COPY src/PromptFaces.Generation/PromptFaces.Generation.csproj src/PromptFaces.Generation/
COPY src/PromptFaces.Scheduling/PromptFaces.Scheduling.csproj src/PromptFaces.Scheduling/
COPY src/PromptFaces.Data/PromptFaces.Data.csproj src/PromptFaces.Data/
COPY src/PromptFaces.Engine/PromptFaces.Engine.csproj src/PromptFaces.Engine/
COPY src/PromptFaces.Web/PromptFaces.Web.csproj src/PromptFaces.Web/
RUN dotnet restore src/PromptFaces.Web/PromptFaces.Web.csproj

COPY src/ src/
COPY wwwroot/ wwwroot/
COPY appsettings.json ./
RUN dotnet publish src/PromptFaces.Web/PromptFaces.Web.csproj -c Release --no-restore -o /app/publish

# ---- run ----
FROM ${RUNTIME_IMAGE} AS final
# libtorch's CPU kernels use OpenMP.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/publish ./
COPY models/ models/

# The content root is /app: appsettings.json, wwwroot/ and models/ are found there, and the SQLite database, images
# and data-protection keys go to /app/data (a volume, so nothing a user made is lost with the container).
ENV ASPNETCORE_URLS=http://+:8080 \
    ASPNETCORE_CONTENTROOT=/app \
    TORCH_CPP_LOG_LEVEL=ERROR
VOLUME /app/data
EXPOSE 8080
ENTRYPOINT ["dotnet", "PromptFaces.Web.dll"]
