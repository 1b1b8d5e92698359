using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace PromptFaces.Data.Migrations
{
    /// <inheritdoc />
    public partial class FairShareScheduling : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<double>(
                name: "DefaultDeviceSecondsPerDay",
                table: "Teams",
                type: "REAL",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "DefaultMaxQueued",
                table: "Teams",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "DefaultMaxRunning",
                table: "Teams",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "DefaultMaxStepsPerJob",
                table: "Teams",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "Share",
                table: "Teams",
                type: "REAL",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "CheckpointStep",
                table: "Jobs",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<string>(
                name: "ClaimedBy",
                table: "Jobs",
                type: "TEXT",
                maxLength: 200,
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "DeviceSeconds",
                table: "Jobs",
                type: "REAL",
                nullable: false,
                defaultValue: 0.0);

            migrationBuilder.AddColumn<double>(
                name: "PriorityBoost",
                table: "Jobs",
                type: "REAL",
                nullable: false,
                defaultValue: 0.0);

            migrationBuilder.CreateTable(
                name: "UsageRecords",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    JobId = table.Column<Guid>(type: "TEXT", nullable: false),
                    UserId = table.Column<string>(type: "TEXT", maxLength: 450, nullable: false),
                    TeamKey = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    At = table.Column<DateTime>(type: "TEXT", nullable: false),
                    DeviceSeconds = table.Column<double>(type: "REAL", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_UsageRecords", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "UserScheduling",
                columns: table => new
                {
                    UserId = table.Column<string>(type: "TEXT", nullable: false),
                    Share = table.Column<double>(type: "REAL", nullable: true),
                    SchedulingTeamId = table.Column<int>(type: "INTEGER", nullable: true),
                    MaxQueued = table.Column<int>(type: "INTEGER", nullable: true),
                    MaxRunning = table.Column<int>(type: "INTEGER", nullable: true),
                    MaxStepsPerJob = table.Column<int>(type: "INTEGER", nullable: true),
                    DeviceSecondsPerDay = table.Column<double>(type: "REAL", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_UserScheduling", x => x.UserId);
                    table.ForeignKey(
                        name: "FK_UserScheduling_AspNetUsers_UserId",
                        column: x => x.UserId,
                        principalTable: "AspNetUsers",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "FK_UserScheduling_Teams_SchedulingTeamId",
                        column: x => x.SchedulingTeamId,
                        principalTable: "Teams",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.SetNull);
                });

            migrationBuilder.CreateIndex(
                name: "IX_UsageRecords_At",
                table: "UsageRecords",
                column: "At");

            migrationBuilder.CreateIndex(
                name: "IX_UsageRecords_UserId_At",
                table: "UsageRecords",
                columns: new[] { "UserId", "At" });

            migrationBuilder.CreateIndex(
                name: "IX_UserScheduling_SchedulingTeamId",
                table: "UserScheduling",
                column: "SchedulingTeamId");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "UsageRecords");

            migrationBuilder.DropTable(
                name: "UserScheduling");

            migrationBuilder.DropColumn(
                name: "DefaultDeviceSecondsPerDay",
                table: "Teams");

            migrationBuilder.DropColumn(
                name: "DefaultMaxQueued",
                table: "Teams");

            migrationBuilder.DropColumn(
                name: "DefaultMaxRunning",
                table: "Teams");

            migrationBuilder.DropColumn(
                name: "DefaultMaxStepsPerJob",
                table: "Teams");

            migrationBuilder.DropColumn(
                name: "Share",
                table: "Teams");

            migrationBuilder.DropColumn(
                name: "CheckpointStep",
                table: "Jobs");

            migrationBuilder.DropColumn(
                name: "ClaimedBy",
                table: "Jobs");

            migrationBuilder.DropColumn(
                name: "DeviceSeconds",
                table: "Jobs");

            migrationBuilder.DropColumn(
                name: "PriorityBoost",
                table: "Jobs");
        }
    }
}
