#Requires -Version 5.1
#Requires -Modules ActiveDirectory
<#
.SYNOPSIS
    Grants the entra-writeback service account exactly the rights group writeback needs on its
    OUs, and nothing more.

.DESCRIPTION
    The least-privilege twin of Microsoft's Set-ADSyncUnifiedGroupWritebackPermissions (which
    grants Generic Read/Write, Create/Delete child and Delete/Delete tree on group objects).
    For every OU given (ad.target_ou, ad.target_ou_m365, ad.soft_delete_ou, ad.previous_ous) it
    adds to the OU's DACL:

      Create and delete child objects of class group       this OU and the OUs below it
      Read/write property, on descendant group objects:
        cn, name                                         rename (a displayName change does)
        displayName, description, groupType,             what the service writes
        adminDescription, msDS-ExternalDirectoryObjectId
        member                                           membership
        mail, proxyAddresses, mailNickname               Microsoft 365 groups' mail attributes

    Nothing on users or other classes, nothing on the OU's own properties, nothing outside these
    OUs: reading users by SID, the schema and the rootDSE is what Authenticated Users may do by
    default. Moving a group between two of the OUs (soft_delete = "move", previous_ous) needs
    create-child on the new OU and delete-child on the old one: both are granted.
    An attribute the schema lacks (msDS-ExternalDirectoryObjectId before the Windows Server
    2016 schema, mailNickname without Exchange) is skipped with a warning.
    Idempotent: a rule already present is not added twice.

    Afterwards `entra-writeback check` tests every one of these rights on a throw-away group
    in each OU and names any that is missing.

.PARAMETER Account
    The service account: sAMAccountName, userPrincipalName or distinguished name (a user or a
    group managed service account).

.PARAMETER OrganizationalUnit
    Distinguished names of the OUs the service owns.

.EXAMPLE
    .\Grant-EntraWritebackPermissions.ps1 -Account svc-writeback `
        -OrganizationalUnit 'OU=Cloud Groups,DC=corp,DC=example,DC=com'

.EXAMPLE
    .\Grant-EntraWritebackPermissions.ps1 -Account 'gmsa-writeback$' -WhatIf `
        -OrganizationalUnit 'OU=Cloud Groups,DC=corp,DC=example,DC=com','OU=Deleted Cloud Groups,DC=corp,DC=example,DC=com'
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)]
    [string] $Account,
    [Parameter(Mandatory)]
    [string[]] $OrganizationalUnit
)

$ErrorActionPreference = 'Stop'
Import-Module ActiveDirectory

# What the service writes on its groups (src/directory/plan.rs), plus the RDN for renames.
$attributes = @(
    'cn', 'name', 'displayName', 'description', 'groupType', 'adminDescription',
    'msDS-ExternalDirectoryObjectId', 'member', 'mail', 'proxyAddresses', 'mailNickname'
)

# RFC 4515: \ * ( ) and NUL in a filter value become \XX.
function ConvertTo-LdapFilterValue([string] $Value) {
    -join ($Value.ToCharArray() | ForEach-Object {
            if ('\*()'.Contains([string] $_) -or [int] $_ -eq 0) { '\{0:x2}' -f [int] $_ } else { $_ }
        })
}

$rootDse = Get-ADRootDSE
$escaped = ConvertTo-LdapFilterValue $Account
$principal = Get-ADObject -LDAPFilter "(|(sAMAccountName=$escaped)(userPrincipalName=$escaped)(distinguishedName=$escaped))" -Properties objectSid
if (@($principal).Count -ne 1) {
    throw "Account '$Account' matches $(@($principal).Count) objects; give its distinguished name"
}
$sid = [System.Security.Principal.SecurityIdentifier] $principal.objectSid

# schemaIDGUIDs, from this forest's schema.
$names = @('group') + $attributes
$filter = '(|' + (($names | ForEach-Object { "(lDAPDisplayName=$_)" }) -join '') + ')'
$guids = @{}
Get-ADObject -SearchBase $rootDse.schemaNamingContext -LDAPFilter $filter -Properties lDAPDisplayName, schemaIDGUID |
    ForEach-Object { $guids[$_.lDAPDisplayName] = [guid] $_.schemaIDGUID }
if (-not $guids.ContainsKey('group')) { throw 'the schema has no group class' }
$group = $guids['group']

$allow = [System.Security.AccessControl.AccessControlType]::Allow
$childRights = [System.DirectoryServices.ActiveDirectoryRights] 'CreateChild, DeleteChild'
$propertyRights = [System.DirectoryServices.ActiveDirectoryRights] 'ReadProperty, WriteProperty'
$rules = @(
    # This OU and every OU below it.
    [System.DirectoryServices.ActiveDirectoryAccessRule]::new(
        $sid, $childRights, $allow, $group,
        [System.DirectoryServices.ActiveDirectorySecurityInheritance]::All)
)
foreach ($attr in $attributes) {
    if (-not $guids.ContainsKey($attr)) {
        Write-Warning "the schema has no $attr; not granted"
        continue
    }
    # Inherited by the group objects below the OU only.
    $rules += [System.DirectoryServices.ActiveDirectoryAccessRule]::new(
        $sid, $propertyRights, $allow, $guids[$attr],
        [System.DirectoryServices.ActiveDirectorySecurityInheritance]::Descendents, $group)
}

foreach ($ou in $OrganizationalUnit) {
    $target = Get-ADOrganizationalUnit -Identity $ou
    $path = "AD:\$($target.DistinguishedName)"
    $acl = Get-Acl -Path $path
    $present = $acl.GetAccessRules($true, $false, [System.Security.Principal.SecurityIdentifier])
    $added = 0
    foreach ($rule in $rules) {
        $same = $present | Where-Object {
            $_.IdentityReference -eq $sid -and $_.ActiveDirectoryRights -eq $rule.ActiveDirectoryRights -and
            $_.ObjectType -eq $rule.ObjectType -and $_.InheritedObjectType -eq $rule.InheritedObjectType -and
            $_.InheritanceType -eq $rule.InheritanceType -and $_.AccessControlType -eq $allow
        }
        if (-not $same) {
            $acl.AddAccessRule($rule)
            $added++
        }
    }
    if ($added -eq 0) {
        Write-Host "$($target.DistinguishedName): already delegated to $Account"
    } elseif ($PSCmdlet.ShouldProcess($target.DistinguishedName, "grant group writeback rights to $Account ($added rules)")) {
        Set-Acl -Path $path -AclObject $acl
        Write-Host "$($target.DistinguishedName): delegated group writeback to $Account ($added rules)"
    }
}
