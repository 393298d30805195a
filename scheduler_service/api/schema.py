# Generated from schema.graphql by `python -m scheduler_service.api.codegen`: do not edit.
import sgqlc.types
import sgqlc.types.datetime


schema = sgqlc.types.Schema()


__docformat__ = 'markdown'


########################################################################
# Scalars and Enumerations
########################################################################
Boolean = sgqlc.types.Boolean

DateTime = sgqlc.types.datetime.DateTime

class EffectTiming(sgqlc.types.Enum):
    '''When an effect runs relative to the resolution of the entity it is
    attached to.

    Enumeration Choices:

    * `ON_RESOLVE`: While the entity resolves.
    * `POST`: After the entity has resolved.
    * `PRE`: Before the entity resolves.
    '''
    __schema__ = schema
    __choices__ = ('ON_RESOLVE', 'POST', 'PRE')


ID = sgqlc.types.ID

Int = sgqlc.types.Int

class JSON(sgqlc.types.Scalar):
    '''Any JSON value: object, array, string, number, boolean or null.'''
    __schema__ = schema


String = sgqlc.types.String


########################################################################
# Input Objects
########################################################################
class AdvanceWorldTimeInput(sgqlc.types.Input):
    '''Input of advanceWorldTime.'''
    __schema__ = schema
    __field_names__ = ('campaign_id', 'to', 'branch_id', 'invalidate_cache')
    campaign_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='campaignId')
    '''Identifier of the campaign.'''

    to = sgqlc.types.Field(sgqlc.types.non_null(DateTime), graphql_name='to')
    '''The new world time; must not be before the current one.'''

    branch_id = sgqlc.types.Field(ID, graphql_name='branchId')
    '''Branch of the timeline (accepted, unused by the reference API).'''

    invalidate_cache = sgqlc.types.Field(Boolean, graphql_name='invalidateCache')
    '''Ask the API to drop its caches (accepted, nothing to drop in the
    reference API).
    '''



class CreateCampaignInput(sgqlc.types.Input):
    '''Input of createCampaign.'''
    __schema__ = schema
    __field_names__ = ('name', 'current_world_time', 'settings', 'world_id')
    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    current_world_time = sgqlc.types.Field(DateTime, graphql_name='currentWorldTime')
    '''Initial world time; omit for a campaign without a world clock.'''

    settings = sgqlc.types.Field(JSON, graphql_name='settings')
    '''Free-form campaign settings.'''

    world_id = sgqlc.types.Field(ID, graphql_name='worldId')
    '''Upstream's world reference; accepted, not required.'''



class CreateEffectInput(sgqlc.types.Input):
    '''Input of createEffect.'''
    __schema__ = schema
    __field_names__ = ('name', 'effect_type', 'payload', 'entity_type', 'entity_id', 'timing', 'priority', 'is_active')
    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    effect_type = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='effectType')
    '''Kind of effect, e.g. patch.'''

    payload = sgqlc.types.Field(sgqlc.types.non_null(JSON), graphql_name='payload')
    '''What the effect does; for patch effects a JSON-Patch list of
    operations.
    '''

    entity_type = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='entityType')
    '''Type of the target entity: Settlement, Structure, Kingdom,
    Event...
    '''

    entity_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='entityId')
    '''Identifier of the target entity.'''

    timing = sgqlc.types.Field(EffectTiming, graphql_name='timing')
    '''When the effect runs relative to the resolution of its entity.'''

    priority = sgqlc.types.Field(Int, graphql_name='priority')
    '''Order among effects of the same timing; higher runs first.'''

    is_active = sgqlc.types.Field(Boolean, graphql_name='isActive')
    '''Inactive effects are never executed.'''



class CreateEventInput(sgqlc.types.Input):
    '''Input of createEvent.'''
    __schema__ = schema
    __field_names__ = ('campaign_id', 'name', 'event_type', 'scheduled_at', 'variables', 'location_id')
    campaign_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='campaignId')
    '''Campaign the event belongs to.'''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    event_type = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='eventType')
    '''Kind of event: story, kingdom, party or world.'''

    scheduled_at = sgqlc.types.Field(DateTime, graphql_name='scheduledAt')
    '''World time at which the event is due.'''

    variables = sgqlc.types.Field(JSON, graphql_name='variables')
    '''Free-form variables of the event.'''

    location_id = sgqlc.types.Field(ID, graphql_name='locationId')
    '''Upstream's location reference; accepted, not required.'''



class CreateKingdomInput(sgqlc.types.Input):
    '''Input of createKingdom.'''
    __schema__ = schema
    __field_names__ = ('campaign_id', 'name', 'level', 'variables')
    campaign_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='campaignId')
    '''Campaign the kingdom belongs to.'''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    level = sgqlc.types.Field(Int, graphql_name='level')
    '''Level of the kingdom.'''

    variables = sgqlc.types.Field(JSON, graphql_name='variables')
    '''Typed variables of the kingdom; {} when omitted.'''



class CreateSettlementInput(sgqlc.types.Input):
    '''Input of createSettlement.'''
    __schema__ = schema
    __field_names__ = ('kingdom_id', 'name', 'level', 'variables', 'location_id')
    kingdom_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='kingdomId')
    '''Kingdom the settlement belongs to.'''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    level = sgqlc.types.Field(Int, graphql_name='level')
    '''Level of the settlement.'''

    variables = sgqlc.types.Field(JSON, graphql_name='variables')
    '''Typed variables of the settlement; {} when omitted.'''

    location_id = sgqlc.types.Field(ID, graphql_name='locationId')
    '''Upstream's location reference; accepted, not required.'''



class CreateStructureInput(sgqlc.types.Input):
    '''Input of createStructure.'''
    __schema__ = schema
    __field_names__ = ('settlement_id', 'type', 'name', 'level', 'variables')
    settlement_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='settlementId')
    '''Settlement the structure stands in.'''

    type = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='type')
    '''Kind of structure: temple, barracks, market, library...'''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    level = sgqlc.types.Field(Int, graphql_name='level')
    '''Level of the structure.'''

    variables = sgqlc.types.Field(JSON, graphql_name='variables')
    '''Typed variables of the structure; {} when omitted.'''



class ExecuteEffectInput(sgqlc.types.Input):
    '''Input of executeEffect.'''
    __schema__ = schema
    __field_names__ = ('effect_id', 'context', 'dry_run')
    effect_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='effectId')
    '''Identifier of the effect to execute.'''

    context = sgqlc.types.Field(JSON, graphql_name='context')
    '''Recorded unchanged on the execution; the scheduler passes
    schedulerJobId here.
    '''

    dry_run = sgqlc.types.Field(Boolean, graphql_name='dryRun')
    '''Compute the outcome without applying or recording anything.'''



class UpdateSettlementInput(sgqlc.types.Input):
    '''Input of updateSettlement.'''
    __schema__ = schema
    __field_names__ = ('level', 'variables', 'expected_version', 'branch_id', 'world_time')
    level = sgqlc.types.Field(Int, graphql_name='level')
    '''New level.'''

    variables = sgqlc.types.Field(JSON, graphql_name='variables')
    '''Variables merged key by key into the stored ones.'''

    expected_version = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='expectedVersion')
    '''The version the caller read; CONFLICT when it is not the stored
    version.
    '''

    branch_id = sgqlc.types.Field(ID, graphql_name='branchId')
    '''Branch of the timeline (accepted, unused by the reference API).'''

    world_time = sgqlc.types.Field(DateTime, graphql_name='worldTime')
    '''World time of the change (accepted, unused by the reference API).'''



class UpdateStructureInput(sgqlc.types.Input):
    '''Input of updateStructure.'''
    __schema__ = schema
    __field_names__ = ('level', 'variables', 'expected_version', 'branch_id', 'world_time')
    level = sgqlc.types.Field(Int, graphql_name='level')
    '''New level.'''

    variables = sgqlc.types.Field(JSON, graphql_name='variables')
    '''Variables merged key by key into the stored ones.'''

    expected_version = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='expectedVersion')
    '''The version the caller read; CONFLICT when it is not the stored
    version.
    '''

    branch_id = sgqlc.types.Field(ID, graphql_name='branchId')
    '''Branch of the timeline (accepted, unused by the reference API).'''

    world_time = sgqlc.types.Field(DateTime, graphql_name='worldTime')
    '''World time of the change (accepted, unused by the reference API).'''




########################################################################
# Output Objects and Interfaces
########################################################################
class Campaign(sgqlc.types.Type):
    '''A campaign: the world whose clock and entities the scheduler looks
    after.
    '''
    __schema__ = schema
    __field_names__ = ('id', 'name', 'current_world_time', 'is_active', 'settings')
    id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='id')
    '''Identifier of the campaign.'''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    current_world_time = sgqlc.types.Field(DateTime, graphql_name='currentWorldTime')
    '''The campaign's world time; null when the campaign has no world
    clock yet.
    '''

    is_active = sgqlc.types.Field(sgqlc.types.non_null(Boolean), graphql_name='isActive')
    '''False when the campaign is archived or paused.'''

    settings = sgqlc.types.Field(JSON, graphql_name='settings')
    '''Free-form campaign settings.'''



class Effect(sgqlc.types.Type):
    '''An effect: a change (for patch effects a JSON-Patch list) applied
    to one entity.
    '''
    __schema__ = schema
    __field_names__ = ('id', 'name', 'effect_type', 'payload', 'entity_type', 'entity_id', 'timing', 'priority', 'is_active', 'version', 'executions')
    id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='id')
    '''Identifier of the effect.'''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    effect_type = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='effectType')
    '''Kind of effect, e.g. patch.'''

    payload = sgqlc.types.Field(sgqlc.types.non_null(JSON), graphql_name='payload')
    '''What the effect does; for patch effects a JSON-Patch list of
    operations.
    '''

    entity_type = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='entityType')
    '''Type of the target entity: Settlement, Structure, Kingdom,
    Event...
    '''

    entity_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='entityId')
    '''Identifier of the target entity.'''

    timing = sgqlc.types.Field(sgqlc.types.non_null(EffectTiming), graphql_name='timing')
    '''When the effect runs relative to the resolution of its entity.'''

    priority = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='priority')
    '''Order among effects of the same timing; higher runs first.'''

    is_active = sgqlc.types.Field(sgqlc.types.non_null(Boolean), graphql_name='isActive')
    '''Inactive effects are never executed.'''

    version = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='version')
    '''Optimistic-lock version; bumped by one on every update.'''

    executions = sgqlc.types.Field(sgqlc.types.non_null(sgqlc.types.list_of(sgqlc.types.non_null('EffectExecution'))), graphql_name='executions')
    '''Every recorded execution of this effect, oldest first.'''



class EffectExecution(sgqlc.types.Type):
    '''One recorded execution of an effect.'''
    __schema__ = schema
    __field_names__ = ('id', 'effect_id', 'executed_at', 'executed_by', 'context', 'result', 'error')
    id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='id')
    '''Identifier of the execution.'''

    effect_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='effectId')
    '''Effect that was executed.'''

    executed_at = sgqlc.types.Field(sgqlc.types.non_null(DateTime), graphql_name='executedAt')
    '''Wall-clock time of the execution.'''

    executed_by = sgqlc.types.Field(String, graphql_name='executedBy')
    '''Who executed it (e.g. the service account).'''

    context = sgqlc.types.Field(JSON, graphql_name='context')
    '''The context passed to executeEffect, unchanged (the scheduler puts
    schedulerJobId here).
    '''

    result = sgqlc.types.Field(JSON, graphql_name='result')
    '''What the execution did.'''

    error = sgqlc.types.Field(String, graphql_name='error')
    '''Why the execution failed; null on success.'''



class EffectExecutionResult(sgqlc.types.Type):
    '''The outcome of executeEffect.'''
    __schema__ = schema
    __field_names__ = ('success', 'patch_applied', 'error', 'execution_id', 'affected_fields')
    success = sgqlc.types.Field(sgqlc.types.non_null(Boolean), graphql_name='success')
    '''True when the effect was applied (or, in a dry run, would have
    been).
    '''

    patch_applied = sgqlc.types.Field(JSON, graphql_name='patchApplied')
    '''The JSON-Patch operations applied (or that would be applied in a
    dry run).
    '''

    error = sgqlc.types.Field(String, graphql_name='error')
    '''Why the execution failed; null on success.'''

    execution_id = sgqlc.types.Field(ID, graphql_name='executionId')
    '''Identifier of the recorded execution; null in a dry run.'''

    affected_fields = sgqlc.types.Field(sgqlc.types.list_of(sgqlc.types.non_null(String)), graphql_name='affectedFields')
    '''Paths of the fields the effect changed.'''



class Event(sgqlc.types.Type):
    '''An event of a campaign, scheduled in world time.'''
    __schema__ = schema
    __field_names__ = ('id', 'campaign_id', 'name', 'event_type', 'scheduled_at', 'occurred_at', 'is_completed', 'variables', 'version')
    id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='id')
    '''Identifier of the event.'''

    campaign_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='campaignId')
    '''Campaign the event belongs to.'''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    event_type = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='eventType')
    '''Kind of event: story, kingdom, party or world.'''

    scheduled_at = sgqlc.types.Field(DateTime, graphql_name='scheduledAt')
    '''World time at which the event is due.'''

    occurred_at = sgqlc.types.Field(DateTime, graphql_name='occurredAt')
    '''World time at which the event happened or was expired.'''

    is_completed = sgqlc.types.Field(sgqlc.types.non_null(Boolean), graphql_name='isCompleted')
    '''True once the event has happened or was expired.'''

    variables = sgqlc.types.Field(JSON, graphql_name='variables')
    '''Free-form variables of the event.'''

    version = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='version')
    '''Optimistic-lock version; bumped by one on every update.'''



class EventConnection(sgqlc.types.Type):
    '''A page of events. Extension.'''
    __schema__ = schema
    __field_names__ = ('nodes', 'page_info')
    nodes = sgqlc.types.Field(sgqlc.types.non_null(sgqlc.types.list_of(sgqlc.types.non_null(Event))), graphql_name='nodes')
    '''The events of this page.'''

    page_info = sgqlc.types.Field(sgqlc.types.non_null('PageInfo'), graphql_name='pageInfo')
    '''Where to continue.'''



class Kingdom(sgqlc.types.Type):
    '''A kingdom of a campaign; settlements belong to kingdoms.'''
    __schema__ = schema
    __field_names__ = ('id', 'campaign_id', 'name', 'level', 'variables', 'version')
    id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='id')
    '''Identifier of the kingdom.'''

    campaign_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='campaignId')
    '''Campaign the kingdom belongs to.'''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    level = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='level')
    '''Level of the kingdom.'''

    variables = sgqlc.types.Field(JSON, graphql_name='variables')
    '''Typed variables of the kingdom.'''

    version = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='version')
    '''Optimistic-lock version; bumped by one on every update.'''



class Mutation(sgqlc.types.Type):
    '''Writes.'''
    __schema__ = schema
    __field_names__ = ('expire_event', 'execute_effect', 'update_settlement', 'update_structure', 'advance_world_time', 'create_campaign', 'create_kingdom', 'create_settlement', 'create_structure', 'create_event', 'create_effect')
    expire_event = sgqlc.types.Field(sgqlc.types.non_null(Event), graphql_name='expireEvent', args=sgqlc.types.ArgDict((
        ('event_id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='eventId', default=None)),
))
    )
    '''Marks the event completed with occurredAt = the campaign's world
    time (or now, with no world clock); runs no effects. CONFLICT when
    the event is already completed.

    Arguments:

    * `event_id` (`ID!`): Identifier of the event.
    '''

    execute_effect = sgqlc.types.Field(sgqlc.types.non_null(EffectExecutionResult), graphql_name='executeEffect', args=sgqlc.types.ArgDict((
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(ExecuteEffectInput), graphql_name='input', default=None)),
))
    )
    '''Executes an effect and records an EffectExecution whose context is
    the one passed. A dry run applies and records nothing.

    Arguments:

    * `input` (`ExecuteEffectInput!`): The effect, its context and
      whether this is a dry run.
    '''

    update_settlement = sgqlc.types.Field(sgqlc.types.non_null('Settlement'), graphql_name='updateSettlement', args=sgqlc.types.ArgDict((
        ('id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='id', default=None)),
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(UpdateSettlementInput), graphql_name='input', default=None)),
))
    )
    '''Updates a settlement: variables are merged key by key; CONFLICT
    when expectedVersion is not the stored version; a success bumps
    the version by one.

    Arguments:

    * `id` (`ID!`): Identifier of the settlement.
    * `input` (`UpdateSettlementInput!`): The changes and the expected
      version.
    '''

    update_structure = sgqlc.types.Field(sgqlc.types.non_null('Structure'), graphql_name='updateStructure', args=sgqlc.types.ArgDict((
        ('id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='id', default=None)),
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(UpdateStructureInput), graphql_name='input', default=None)),
))
    )
    '''Updates a structure: variables are merged key by key; CONFLICT
    when expectedVersion is not the stored version; a success bumps
    the version by one.

    Arguments:

    * `id` (`ID!`): Identifier of the structure.
    * `input` (`UpdateStructureInput!`): The changes and the expected
      version.
    '''

    advance_world_time = sgqlc.types.Field(sgqlc.types.non_null('WorldTimeResult'), graphql_name='advanceWorldTime', args=sgqlc.types.ArgDict((
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(AdvanceWorldTimeInput), graphql_name='input', default=None)),
))
    )
    '''Moves a campaign's world clock forward and publishes
    campaign.{id}.worldTimeAdvanced. Moving it backwards is
    BAD_USER_INPUT.

    Arguments:

    * `input` (`AdvanceWorldTimeInput!`): The campaign and the new
      world time.
    '''

    create_campaign = sgqlc.types.Field(sgqlc.types.non_null(Campaign), graphql_name='createCampaign', args=sgqlc.types.ArgDict((
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(CreateCampaignInput), graphql_name='input', default=None)),
))
    )
    '''Creates a campaign (demos, tests and benchmarks).

    Arguments:

    * `input` (`CreateCampaignInput!`): The new campaign.
    '''

    create_kingdom = sgqlc.types.Field(sgqlc.types.non_null(Kingdom), graphql_name='createKingdom', args=sgqlc.types.ArgDict((
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(CreateKingdomInput), graphql_name='input', default=None)),
))
    )
    '''Creates a kingdom (demos, tests and benchmarks).

    Arguments:

    * `input` (`CreateKingdomInput!`): The new kingdom.
    '''

    create_settlement = sgqlc.types.Field(sgqlc.types.non_null('Settlement'), graphql_name='createSettlement', args=sgqlc.types.ArgDict((
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(CreateSettlementInput), graphql_name='input', default=None)),
))
    )
    '''Creates a settlement and publishes entityModified (demos, tests
    and benchmarks).

    Arguments:

    * `input` (`CreateSettlementInput!`): The new settlement.
    '''

    create_structure = sgqlc.types.Field(sgqlc.types.non_null('Structure'), graphql_name='createStructure', args=sgqlc.types.ArgDict((
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(CreateStructureInput), graphql_name='input', default=None)),
))
    )
    '''Creates a structure and publishes entityModified (demos, tests and
    benchmarks).

    Arguments:

    * `input` (`CreateStructureInput!`): The new structure.
    '''

    create_event = sgqlc.types.Field(sgqlc.types.non_null(Event), graphql_name='createEvent', args=sgqlc.types.ArgDict((
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(CreateEventInput), graphql_name='input', default=None)),
))
    )
    '''Creates an event and publishes entityModified (demos, tests and
    benchmarks).

    Arguments:

    * `input` (`CreateEventInput!`): The new event.
    '''

    create_effect = sgqlc.types.Field(sgqlc.types.non_null(Effect), graphql_name='createEffect', args=sgqlc.types.ArgDict((
        ('input', sgqlc.types.Arg(sgqlc.types.non_null(CreateEffectInput), graphql_name='input', default=None)),
))
    )
    '''Creates an effect (demos, tests and benchmarks).

    Arguments:

    * `input` (`CreateEffectInput!`): The new effect.
    '''



class PageInfo(sgqlc.types.Type):
    '''Where to continue a paged list.'''
    __schema__ = schema
    __field_names__ = ('has_next_page', 'end_cursor')
    has_next_page = sgqlc.types.Field(sgqlc.types.non_null(Boolean), graphql_name='hasNextPage')
    '''True when more items follow the last one of this page.'''

    end_cursor = sgqlc.types.Field(String, graphql_name='endCursor')
    '''Opaque cursor of the last item of this page; pass it as `after` to
    read the next page.
    '''



class Query(sgqlc.types.Type):
    '''Reads.'''
    __schema__ = schema
    __field_names__ = ('campaigns', 'campaign', 'get_current_world_time', 'get_overdue_events', 'get_effect', 'settlements_by_campaign', 'structures_by_campaign', 'structures_by_settlement', 'settlement', 'structure', 'event')
    campaigns = sgqlc.types.Field(sgqlc.types.non_null(sgqlc.types.list_of(sgqlc.types.non_null(Campaign))), graphql_name='campaigns')
    '''The campaigns the service account can see.'''

    campaign = sgqlc.types.Field(Campaign, graphql_name='campaign', args=sgqlc.types.ArgDict((
        ('id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='id', default=None)),
))
    )
    '''One campaign, or null when missing.

    Arguments:

    * `id` (`ID!`): Identifier of the campaign.
    '''

    get_current_world_time = sgqlc.types.Field(DateTime, graphql_name='getCurrentWorldTime', args=sgqlc.types.ArgDict((
        ('campaign_id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='campaignId', default=None)),
))
    )
    '''The campaign's world time; null when the campaign has no world
    clock.

    Arguments:

    * `campaign_id` (`ID!`): Identifier of the campaign.
    '''

    get_overdue_events = sgqlc.types.Field(sgqlc.types.non_null(EventConnection), graphql_name='getOverdueEvents', args=sgqlc.types.ArgDict((
        ('campaign_id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='campaignId', default=None)),
        ('grace_period_ms', sgqlc.types.Arg(Int, graphql_name='gracePeriodMs', default=None)),
        ('first', sgqlc.types.Arg(Int, graphql_name='first', default=None)),
        ('after', sgqlc.types.Arg(String, graphql_name='after', default=None)),
))
    )
    '''Events with isCompleted = false and scheduledAt < currentWorldTime
    - gracePeriod, oldest first; empty when the campaign has no world
    time. Extension: the paged form and gracePeriodMs (upstream
    returns a plain list with a fixed 5-minute grace).

    Arguments:

    * `campaign_id` (`ID!`): Identifier of the campaign.
    * `grace_period_ms` (`Int`): Grace period in milliseconds; 300000
      (5 minutes) when omitted.
    * `first` (`Int`): Page size: 1 to 500; 100 when omitted.
    * `after` (`String`): Cursor (endCursor of the previous page)
      after which the page starts.
    '''

    get_effect = sgqlc.types.Field(Effect, graphql_name='getEffect', args=sgqlc.types.ArgDict((
        ('id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='id', default=None)),
))
    )
    '''One effect with its executions, or null when missing.

    Arguments:

    * `id` (`ID!`): Identifier of the effect.
    '''

    settlements_by_campaign = sgqlc.types.Field(sgqlc.types.non_null('SettlementConnection'), graphql_name='settlementsByCampaign', args=sgqlc.types.ArgDict((
        ('campaign_id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='campaignId', default=None)),
        ('first', sgqlc.types.Arg(Int, graphql_name='first', default=None)),
        ('after', sgqlc.types.Arg(String, graphql_name='after', default=None)),
))
    )
    '''The settlements of a campaign, paged. Extension.

    Arguments:

    * `campaign_id` (`ID!`): Identifier of the campaign.
    * `first` (`Int`): Page size: 1 to 500; 100 when omitted.
    * `after` (`String`): Cursor (endCursor of the previous page)
      after which the page starts.
    '''

    structures_by_campaign = sgqlc.types.Field(sgqlc.types.non_null('StructureConnection'), graphql_name='structuresByCampaign', args=sgqlc.types.ArgDict((
        ('campaign_id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='campaignId', default=None)),
        ('first', sgqlc.types.Arg(Int, graphql_name='first', default=None)),
        ('after', sgqlc.types.Arg(String, graphql_name='after', default=None)),
))
    )
    '''The structures of a campaign, paged. Extension.

    Arguments:

    * `campaign_id` (`ID!`): Identifier of the campaign.
    * `first` (`Int`): Page size: 1 to 500; 100 when omitted.
    * `after` (`String`): Cursor (endCursor of the previous page)
      after which the page starts.
    '''

    structures_by_settlement = sgqlc.types.Field(sgqlc.types.non_null(sgqlc.types.list_of(sgqlc.types.non_null('Structure'))), graphql_name='structuresBySettlement', args=sgqlc.types.ArgDict((
        ('settlement_id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='settlementId', default=None)),
))
    )
    '''The structures of one settlement.

    Arguments:

    * `settlement_id` (`ID!`): Identifier of the settlement.
    '''

    settlement = sgqlc.types.Field('Settlement', graphql_name='settlement', args=sgqlc.types.ArgDict((
        ('id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='id', default=None)),
))
    )
    '''One settlement, or null when missing.

    Arguments:

    * `id` (`ID!`): Identifier of the settlement.
    '''

    structure = sgqlc.types.Field('Structure', graphql_name='structure', args=sgqlc.types.ArgDict((
        ('id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='id', default=None)),
))
    )
    '''One structure, or null when missing.

    Arguments:

    * `id` (`ID!`): Identifier of the structure.
    '''

    event = sgqlc.types.Field(Event, graphql_name='event', args=sgqlc.types.ArgDict((
        ('id', sgqlc.types.Arg(sgqlc.types.non_null(ID), graphql_name='id', default=None)),
))
    )
    '''One event, or null when missing.

    Arguments:

    * `id` (`ID!`): Identifier of the event.
    '''



class Settlement(sgqlc.types.Type):
    '''A settlement of a kingdom.'''
    __schema__ = schema
    __field_names__ = ('id', 'kingdom_id', 'campaign_id', 'name', 'level', 'variables', 'version')
    id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='id')
    '''Identifier of the settlement.'''

    kingdom_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='kingdomId')
    '''Kingdom the settlement belongs to.'''

    campaign_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='campaignId')
    '''Campaign the settlement belongs to. Extension: upstream reaches it
    through the kingdom.
    '''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    level = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='level')
    '''Level of the settlement.'''

    variables = sgqlc.types.Field(sgqlc.types.non_null(JSON), graphql_name='variables')
    '''The settlement's typed variables (population, resources,
    bookkeeping times...).
    '''

    version = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='version')
    '''Optimistic-lock version; bumped by one on every update.'''



class SettlementConnection(sgqlc.types.Type):
    '''A page of settlements. Extension.'''
    __schema__ = schema
    __field_names__ = ('nodes', 'page_info')
    nodes = sgqlc.types.Field(sgqlc.types.non_null(sgqlc.types.list_of(sgqlc.types.non_null(Settlement))), graphql_name='nodes')
    '''The settlements of this page.'''

    page_info = sgqlc.types.Field(sgqlc.types.non_null(PageInfo), graphql_name='pageInfo')
    '''Where to continue.'''



class Structure(sgqlc.types.Type):
    '''A structure (temple, barracks, market, library...) of a
    settlement.
    '''
    __schema__ = schema
    __field_names__ = ('id', 'settlement_id', 'campaign_id', 'type', 'name', 'level', 'variables', 'version')
    id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='id')
    '''Identifier of the structure.'''

    settlement_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='settlementId')
    '''Settlement the structure stands in.'''

    campaign_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='campaignId')
    '''Campaign the structure belongs to. Extension: upstream reaches it
    through the settlement.
    '''

    type = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='type')
    '''Kind of structure: temple, barracks, market, library...'''

    name = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='name')
    '''Display name.'''

    level = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='level')
    '''Level of the structure.'''

    variables = sgqlc.types.Field(sgqlc.types.non_null(JSON), graphql_name='variables')
    '''The structure's typed variables (health, construction and
    maintenance state...).
    '''

    version = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='version')
    '''Optimistic-lock version; bumped by one on every update.'''



class StructureConnection(sgqlc.types.Type):
    '''A page of structures. Extension.'''
    __schema__ = schema
    __field_names__ = ('nodes', 'page_info')
    nodes = sgqlc.types.Field(sgqlc.types.non_null(sgqlc.types.list_of(sgqlc.types.non_null(Structure))), graphql_name='nodes')
    '''The structures of this page.'''

    page_info = sgqlc.types.Field(sgqlc.types.non_null(PageInfo), graphql_name='pageInfo')
    '''Where to continue.'''



class WorldTimeResult(sgqlc.types.Type):
    '''The outcome of advanceWorldTime.'''
    __schema__ = schema
    __field_names__ = ('campaign_id', 'previous_world_time', 'current_world_time', 'affected_entities', 'message')
    campaign_id = sgqlc.types.Field(sgqlc.types.non_null(ID), graphql_name='campaignId')
    '''Campaign whose clock moved.'''

    previous_world_time = sgqlc.types.Field(DateTime, graphql_name='previousWorldTime')
    '''World time before the call; null when the campaign had no world
    clock.
    '''

    current_world_time = sgqlc.types.Field(sgqlc.types.non_null(DateTime), graphql_name='currentWorldTime')
    '''World time after the call.'''

    affected_entities = sgqlc.types.Field(sgqlc.types.non_null(Int), graphql_name='affectedEntities')
    '''Number of entities affected by the move.'''

    message = sgqlc.types.Field(sgqlc.types.non_null(String), graphql_name='message')
    '''Human-readable summary.'''




########################################################################
# Unions
########################################################################

########################################################################
# Schema Entry Points
########################################################################
schema.query_type = Query
schema.mutation_type = Mutation
schema.subscription_type = None

