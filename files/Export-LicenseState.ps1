#Requires -Version 5.1
#Requires -Modules Microsoft.Graph.Authentication, Microsoft.Graph.Users, Microsoft.Graph.Identity.DirectoryManagement
<#
.SYNOPSIS
Exports the users' direct license assignments, as the legacy automation applied them, for entraops.licensing.

.DESCRIPTION
Reads every user's licenseAssignmentStates with the Microsoft Graph PowerShell SDK and writes one
row per user and directly assigned SKU: UserPrincipalName, UserId, SkuId, SkuPartNumber,
DisabledPlans (service plan ids joined with ';') and DisabledPlanNames (service plan names joined
with ';'). Assignments inherited from groups are left out: the file records what the direct
(legacy) automation gives each user, so that the Ansible module
entraops.licensing.license_assignment_info (option expected_state_path) can report every user whose
licensing groups do not give them the same.

CSV is written with Export-Csv -NoTypeInformation -Encoding utf8; JSON with ConvertTo-Json -Depth 5
(the default depth of 2 would cut the plan lists to text). Both are read by the collection.

Works in PowerShell 7 and Windows PowerShell 5.1. Needs the modules Microsoft.Graph.Authentication,
Microsoft.Graph.Users and Microsoft.Graph.Identity.DirectoryManagement
(Install-Module Microsoft.Graph -Scope CurrentUser) and read-only permissions: User.Read.All (users
and their license assignment states) and Organization.Read.All (subscribed SKUs and plan names).

.PARAMETER Path
The file to write. Its extension does not matter; -Format decides the content.

.PARAMETER Format
Csv (default) or Json.

.PARAMETER SkuPartNumber
Only export these SKUs (part numbers such as ENTERPRISEPACK). All SKUs when omitted.

.PARAMETER TenantId
The tenant to connect to when the session is not connected yet.

.EXAMPLE
./Export-LicenseState.ps1 -Path ./legacy-state.csv

.EXAMPLE
./Export-LicenseState.ps1 -Path ./legacy-state.json -Format Json -SkuPartNumber ENTERPRISEPACK, EMS -TenantId contoso.onmicrosoft.com

.NOTES
Part of the entraops.licensing Ansible collection (files/Export-LicenseState.ps1). The script only reads.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [string] $Path,

    [ValidateSet('Csv', 'Json')]
    [string] $Format = 'Csv',

    [string[]] $SkuPartNumber,

    [string] $TenantId
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

if ($null -eq (Get-MgContext)) {
    # Least privileges for a read-only export: users with licenseAssignmentStates, and the tenant's SKUs.
    if ($TenantId) {
        Connect-MgGraph -Scopes 'User.Read.All', 'Organization.Read.All' -TenantId $TenantId | Out-Null
    } else {
        Connect-MgGraph -Scopes 'User.Read.All', 'Organization.Read.All' | Out-Null
    }
}

# Plan and SKU names come from the tenant, never from a fixed list.
$skuNames = @{}
$planNames = @{}
foreach ($sku in Get-MgSubscribedSku -All) {
    $skuNames[$sku.SkuId.ToString().ToLowerInvariant()] = $sku.SkuPartNumber
    foreach ($plan in $sku.ServicePlans) {
        $planNames[$plan.ServicePlanId.ToString().ToLowerInvariant()] = $plan.ServicePlanName
    }
}

$wantedSkus = $null
if ($SkuPartNumber) {
    $wantedSkus = @($SkuPartNumber | ForEach-Object { $_.ToUpperInvariant() })
    foreach ($name in $wantedSkus) {
        if ($skuNames.Values -notcontains $name) {
            throw ("SKU part number '{0}' is not subscribed in this tenant. Subscribed: {1}" -f $name, (($skuNames.Values | Sort-Object) -join ', '))
        }
    }
}

$rows = New-Object System.Collections.Generic.List[object]
$users = Get-MgUser -All -PageSize 999 -Property 'Id', 'UserPrincipalName', 'LicenseAssignmentStates'
foreach ($user in $users) {
    foreach ($state in @($user.LicenseAssignmentStates)) {
        if ($null -eq $state -or $null -ne $state.AssignedByGroup) {
            continue
        }
        $skuId = $state.SkuId.ToString().ToLowerInvariant()
        $partNumber = $skuNames[$skuId]
        if ($null -ne $wantedSkus -and $wantedSkus -notcontains ([string]$partNumber).ToUpperInvariant()) {
            continue
        }
        $disabledIds = @($state.DisabledPlans | ForEach-Object { $_.ToString().ToLowerInvariant() })
        $disabledNames = @($disabledIds | ForEach-Object { if ($planNames.ContainsKey($_)) { $planNames[$_] } else { $_ } })
        $rows.Add([pscustomobject][ordered]@{
                UserPrincipalName = $user.UserPrincipalName
                UserId            = $user.Id.ToLowerInvariant()
                SkuId             = $skuId
                SkuPartNumber     = $partNumber
                DisabledPlans     = ($disabledIds -join ';')
                DisabledPlanNames = ($disabledNames -join ';')
            })
    }
}

if ($Format -eq 'Json') {
    # -Depth 5: the default of 2 truncates nested values to text; -InputObject keeps one row an array.
    $json = ConvertTo-Json -InputObject @($rows.ToArray()) -Depth 5
    [System.IO.File]::WriteAllText($ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path), $json, (New-Object System.Text.UTF8Encoding($false)))
} else {
    $rows | Export-Csv -Path $Path -NoTypeInformation -Encoding utf8
}

Write-Host ('Exported {0} direct license assignments to {1}' -f $rows.Count, $Path)
